"""Key-press latency of the console while the embedded engine works flat out.

    python bench/console_latency.py [--backlog 1000000] [--objects 3000] [--presses 600]

Two real SeaweedFS servers; policy `copy` replicates `--objects` real 4 KiB objects,
policy `backlog` has `--backlog` pending tasks (enqueued straight into the queue,
their keys absent at the source, so each is a real GET answered 404 and skipped:
the engine claims, fetches and records them at full speed). The console runs
headless (Textual's run_test) at 120x36 with the engine embedded, refreshing every
second. A key is posted as the terminal driver posts it; we time

  handled:  key event posted -> its action runs
  painted:  key event posted -> the screen refresh after the action

over `--presses` presses spaced 20-60 ms apart (j/k in the policies table, f twice
freezes and thaws), and report p50/p95/p99/max, plus the console process's RSS.
Prints one JSON line. The target (issue 4) is p99 < 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import resource
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from minio import Minio
from minio.versioningconfig import ENABLED, VersioningConfig
from textual import events

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.aliases import Alias, AliasBook
from engine.config import EngineConfig
from engine.demo.seaweed import SeaweedServer
from engine.model import NewTask, Op
from engine.policy import Policy
from engine.service.embedded import EmbeddedEngine
from engine.state import open_state
from tui.app import Console


def client(server: SeaweedServer) -> Minio:
    host = server.endpoint.split("//")[1]
    return Minio(host, server.access_key, server.secret_key, secure=False, region="us-east-1")


def seed(src: Minio, objects: int) -> None:
    body = b"x" * 4096

    def put(i: int) -> None:
        src.put_object("copy-src", f"obj/{i:07d}", io.BytesIO(body), len(body))

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(objects)))


async def prepare(state: Path, a: SeaweedServer, b: SeaweedServer, backlog: int) -> None:
    book = AliasBook(state / "aliases.json")
    book.set(Alias("src", a.endpoint, a.access_key, a.secret_key))
    book.set(Alias("dst", b.endpoint, b.access_key, b.secret_key))
    opened = await open_state(state / "mirrorline.db")
    store = opened.policies
    await store.add(Policy("copy", 2, "src", "copy-src", "dst", "copy-dst"))
    await store.add(Policy("backlog", 1, "src", "backlog-src", "dst", "backlog-dst"))
    queue = opened.queue
    for start in range(0, backlog, 20_000):
        await queue.enqueue(
            [
                NewTask("backlog", f"gone/{i:08d}", "v1", Op.PUT, 4096)
                for i in range(start, min(backlog, start + 20_000))
            ]
        )
    await opened.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


class Timed(Console):
    """The console plus a stopwatch on the actions the bench presses."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.posted = 0.0
        self.handled: list[float] = []
        self.painted: list[float] = []

    def stamp(self) -> None:
        now = time.perf_counter()
        self.handled.append(now - self.posted)
        self.call_after_refresh(lambda: self.painted.append(time.perf_counter() - self.posted))

    def on_key(self, event: events.Key) -> None:
        if event.key in ("j", "k", "f"):
            self.stamp()


async def measure(state: Path, presses: int) -> dict[str, object]:
    embedded = EmbeddedEngine(EngineConfig(state_dir=state, workers=32, scan_interval=5))
    app = Timed(embedded, starting=embedded.start, refresh=1.0)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause(3)
        start = time.time()
        first = app.view.snapshot
        assert first is not None
        pending_before = first.policy("backlog").backlog.pending  # type: ignore[union-attr]
        keys = ["j", "k"] * 20 + ["f", "f"]
        for n in range(presses):
            await asyncio.sleep(random.uniform(0.02, 0.06))
            key = random.choice(keys)
            app.posted = time.perf_counter()
            app.post_message(events.Key(key, key))
            if n % 100 == 0:
                print(f"{n} presses", file=sys.stderr)
        await pilot.pause(0.5)
        snap = app.view.snapshot
        assert snap is not None
        backlog = snap.policy("backlog")
        copied = snap.policy("copy")
        assert backlog is not None and copied is not None
        during = time.time() - start
        result = {
            "presses": len(app.handled),
            "seconds": round(during, 1),
            # Backlog tasks end as skipped (absent at the source), so count them off the queue.
            "engine_tasks_per_s": round((pending_before - backlog.backlog.pending) / during, 1),
            "backlog_pending_at_end": backlog.backlog.pending,
            "copied": copied.backlog.replicated,
        }
        await embedded.close()
    for name, values in (("handled", app.handled), ("painted", app.painted)):
        ms = [v * 1000 for v in values]
        result[name] = {
            "p50_ms": round(statistics.median(ms), 1),
            "p95_ms": round(percentile(ms, 95), 1),
            "p99_ms": round(percentile(ms, 99), 1),
            "max_ms": round(max(ms), 1),
        }
    result["max_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backlog", type=int, default=1_000_000)
    parser.add_argument("--objects", type=int, default=3000)
    parser.add_argument("--presses", type=int, default=600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        a = SeaweedServer(root / "a", access_key="benchsrc", secret_key="bench-src-secret")
        b = SeaweedServer(root / "b", access_key="benchdst", secret_key="bench-dst-secret")
        a.start()
        b.start()
        try:
            src, dst = client(a), client(b)
            for c, name in (
                (src, "copy-src"),
                (src, "backlog-src"),
                (dst, "copy-dst"),
                (dst, "backlog-dst"),
            ):
                c.make_bucket(name)
                c.set_bucket_versioning(name, VersioningConfig(ENABLED))
            print(f"seeding {args.objects} objects", file=sys.stderr)
            seed(src, args.objects)
            print(f"queueing {args.backlog} tasks", file=sys.stderr)
            state = root / "state"
            state.mkdir()
            t = time.perf_counter()
            asyncio.run(prepare(state, a, b, args.backlog))
            print(f"queued in {time.perf_counter() - t:.1f}s; measuring", file=sys.stderr)
            result = asyncio.run(measure(state, args.presses))
            # Each source version must land once: counted on the target, not from our totals.
            result["target_versions"] = sum(
                1 for _ in dst.list_objects("copy-dst", recursive=True, include_version=True)
            )
        finally:
            a.stop()
            b.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
