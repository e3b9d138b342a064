"""Time to first copy: how long after the engine starts does the first object move?

    python bench/first_copy.py [--objects 3000] [--rounds 5]

N existing 4 KiB objects sit in a versioned bucket on one real SeaweedFS server;
each round replicates them into a fresh bucket on a second one with an
in-process Engine (fresh state dir) until synced. Timed from `Engine.run()`:

- first_queued: the first copy task was queued (by the first page of the first scan)
- first_copy: the first transfer started (a dispatcher leased a task and ran it)
- waited: first_copy - first_queued, the part a wake per page can shorten
- scan_done: the first full scan finished
- synced: the run ended (everything copied)
- replicated: the engine's count of replicated objects (N, unless a task ran twice)

A scan lists and enqueues a page (1,000 keys) at a time. A dispatcher that
hears only of the whole scan's end starts copying after the scan, or at its
next 0.5 s poll; one woken per page starts after the first page. Prints one JSON
line with each round's figures and the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import io
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from minio import Minio
from minio.versioningconfig import ENABLED, VersioningConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from engine.config import EngineConfig  # noqa: E402
from engine.demo.seaweed import SeaweedServer  # noqa: E402
from engine.engine import Engine  # noqa: E402

SOURCE_BUCKET = "first-copy-src"


def client(server: SeaweedServer) -> Minio:
    host = server.endpoint.split("//")[1]
    return Minio(host, server.access_key, server.secret_key, secure=False, region="us-east-1")


def versioned_bucket(minio: Minio, name: str) -> str:
    minio.make_bucket(name)
    minio.set_bucket_versioning(name, VersioningConfig(ENABLED))
    return name


def seed(minio: Minio, count: int) -> None:
    def put(n: int) -> None:
        data = os.urandom(4096)
        minio.put_object(SOURCE_BUCKET, f"obj/{n:06d}", io.BytesIO(data), len(data))

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(put, range(count)))


def configure(state: Path, src: SeaweedServer, dst: SeaweedServer, target_bucket: str) -> None:
    """Aliases and the policy through the real CLI, as an operator sets them."""
    cli = [sys.executable, "-m", "engine.cli", "--state-dir", str(state)]
    for name, server in (("src", src), ("dst", dst)):
        cmd = ["alias", "set", name, server.endpoint, server.access_key, server.secret_key]
        subprocess.run([*cli, *cmd], check=True, capture_output=True)
    add = ["replicate", "add", f"src/{SOURCE_BUCKET}", "--remote-target", f"dst/{target_bucket}"]
    subprocess.run([*cli, *add], check=True, capture_output=True)


async def one_round(state: Path) -> dict[str, float]:
    engine = Engine(EngineConfig(state_dir=state))
    started = time.time()
    run = asyncio.create_task(engine.run(until_synced=True))
    marks: dict[str, float] = {}
    while not run.done():
        if "first_copy" not in marks:
            for flight in (f for d in engine.dispatchers.values() for f in d.in_flight.values()):
                marks["first_queued"] = flight.task.created_at - started
                marks["first_copy"] = flight.started_at - started
                marks["waited"] = flight.started_at - flight.task.created_at
                break
        if "scan_done" not in marks and any(engine.detector.scan_count.values()):
            marks["scan_done"] = time.time() - started
        await asyncio.sleep(0.001)
    await run
    marks["synced"] = time.time() - started
    with contextlib.closing(sqlite3.connect(state / "mirrorline.db")) as db:
        marks["replicated"] = db.execute("SELECT SUM(replicated) FROM totals").fetchone()[0]
    return marks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--objects", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="first-copy-") as tmp:
        root = Path(tmp)
        src = SeaweedServer(root / "src", access_key="benchsrc", secret_key="bench-src-secret")
        dst = SeaweedServer(root / "dst", access_key="benchdst", secret_key="bench-dst-secret")
        src.start()
        dst.start()
        try:
            versioned_bucket(client(src), SOURCE_BUCKET)
            seed(client(src), args.objects)
            rounds = []
            for n in range(args.rounds):
                state = root / f"state-{n}"
                configure(state, src, dst, versioned_bucket(client(dst), f"first-copy-{n}"))
                rounds.append(asyncio.run(one_round(state)))
                print(f"round {n}: {rounds[-1]}", file=sys.stderr)
        finally:
            src.stop()
            dst.stop()
    medians = {k: round(statistics.median(r[k] for r in rounds), 3) for k in rounds[0]}
    print(json.dumps({"objects": args.objects, "rounds": rounds, "median": medians}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
