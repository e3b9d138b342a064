"""The shared PostgreSQL queue: how far more processes go on this machine.

    python bench/queue_pg.py [--quick] [--json-out FILE]

1. claim+complete per second with 1, 2 and 4 processes on one queue (tasks of
   distinct keys, pre-queued; each process claims batches of 50 and completes
   them, as a dispatcher and its recorder do).
2. copy throughput with 1 and 2 `mirrorline run --queue` processes: N small
   objects between two real SeaweedFS servers, timed from `replicate resume`
   (all engines up and idle) until the shared counters say all are replicated.

A throwaway PostgreSQL cluster (engine/demo/postgres.py) and the servers live in
a temporary directory. `run(quick)` is what `python -m bench` calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from engine.demo.postgres import PgCluster, missing
from engine.demo.seaweed import SeaweedServer
from engine.model import Completion, NewTask, Op, Outcome
from engine.state import open_state

MIRRORLINE = [sys.executable, "-m", "engine.cli"]
BATCH = 50


def _drain(url: str, start: Any, done: Any) -> None:
    """One process: claim and complete until the queue is empty."""

    async def work() -> int:
        state = await open_state(url)
        n = 0
        start.wait()
        while batch := await state.queue.claim(["p"], BATCH, 60):
            await state.queue.complete(
                [Completion(t, Outcome.REPLICATED, t.size, "x") for t in batch]
            )
            n += len(batch)
        await state.close()
        return n

    done.put(asyncio.run(work()))


async def _fill(url: str, total: int) -> None:
    state = await open_state(url)
    tasks = [NewTask("p", f"k/{i:08}", "v1", Op.PUT, size=4096) for i in range(total)]
    for i in range(0, total, 1000):
        await state.queue.enqueue(tasks[i : i + 1000])
    await state.close()


def claim_rate(pg: PgCluster, processes: int, total: int) -> float:
    url = pg.fresh_url()
    asyncio.run(_fill(url, total))
    ctx = multiprocessing.get_context("spawn")
    start, done = ctx.Event(), ctx.Queue()
    workers = [ctx.Process(target=_drain, args=(url, start, done)) for _ in range(processes)]
    for w in workers:
        w.start()
    time.sleep(1.0 + processes)  # each has opened its pool and waits at the start line
    began = time.perf_counter()
    start.set()
    handled = sum(done.get(timeout=600) for _ in workers)
    elapsed = time.perf_counter() - began
    for w in workers:
        w.join()
    assert handled == total, f"{handled} of {total} tasks handled"
    return total / elapsed


def _ml(state: Path, *args: str) -> str:
    return subprocess.run(
        [*MIRRORLINE, "--state-dir", str(state), *args], check=True, capture_output=True, text=True
    ).stdout


def copy_rate(pg: PgCluster, root: Path, src: SeaweedServer, dst: SeaweedServer,
              engines: int, objects: int) -> float:  # fmt: skip
    from minio import Minio
    from minio.versioningconfig import ENABLED, VersioningConfig

    url = pg.fresh_url(lease=5)
    schema = url.split("search_path=")[1].split("&")[0]
    state = root / f"state-{engines}"
    bucket = f"bench-{engines}"
    for server in (src, dst):
        client = Minio(server.endpoint.split("//")[1], server.access_key, server.secret_key,
                       secure=False)  # fmt: skip
        client.make_bucket(bucket)
        client.set_bucket_versioning(bucket, VersioningConfig(ENABLED))
        if server is src:
            import io

            for i in range(objects):
                client.put_object(bucket, f"o/{i:06}", io.BytesIO(os.urandom(4096)), 4096)
    for name, server in (("src", src), ("dst", dst)):
        _ml(state, "alias", "set", name, server.endpoint, server.access_key, server.secret_key)
    queue = ("--queue", url)
    _ml(state, "replicate", "add", f"src/{bucket}", "--remote-target", f"dst/{bucket}", *queue)
    _ml(state, "replicate", "pause", *queue)
    procs = [
        subprocess.Popen(
            [*MIRRORLINE, "--state-dir", str(state), "run", "--workers", "32", *queue],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(engines)
    ]
    try:
        while int(pg.psql(f"SELECT count(*) FROM {schema}.nodes") or 0) < engines:
            time.sleep(0.2)
        time.sleep(2.0)  # the first scan has queued everything (paused: nothing claimed yet)
        began = time.perf_counter()
        _ml(state, "replicate", "resume", *queue)
        while True:
            copied = pg.psql(f"SELECT coalesce(sum(replicated), 0) FROM {schema}.totals")
            if int(copied) >= objects:
                break
            time.sleep(0.1)
        return objects / (time.perf_counter() - began)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(60)


def run(quick: bool) -> dict[str, Any]:
    reason = missing()
    if reason:
        return {"ok": False, "error": reason}
    tasks, objects = (4000, 200) if quick else (40000, 1000)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pg = PgCluster().start()
        src = SeaweedServer(root / "src", access_key="srcadmin", secret_key="src-secret-123")
        dst = SeaweedServer(root / "dst", access_key="dstadmin", secret_key="dst-secret-456")
        try:
            claims = {}
            for n in (1, 2, 4):
                claims[n] = round(claim_rate(pg, n, tasks))
                print(f"claim+complete, {n} processes: {claims[n]}/s", file=sys.stderr)
            src.start()
            dst.start()
            copies = {}
            for n in (1, 2):
                copies[n] = round(copy_rate(pg, root, src, dst, n, objects), 1)
                print(f"copy, {n} engines: {copies[n]} objects/s", file=sys.stderr)
        finally:
            for server in (src, dst):
                server.stop()
            pg.stop()
    return {
        "ok": True,
        "cores": os.cpu_count(),
        "tasks": tasks,
        "batch": BATCH,
        "claim_complete_per_s": claims,
        "objects": objects,
        "object_size": 4096,
        "copy_objects_per_s": copies,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args()
    result = run(args.quick)
    line = json.dumps(result)
    print(line)
    if args.json_out:
        args.json_out.write_text(line + "\n")
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
