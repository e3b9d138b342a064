"""CPU per request of the data-path client alone, against one SeaweedFS server.

    python bench/client_cpu.py [--requests 6000] [--concurrency 32] [--rounds 3]
                               [--base /tmp/old-tree]

The copy's own CPU is mostly requests (a GET and a PUT per small object), so this
isolates the client from the queue, the scanner and the servers: a process with
only `S3Client` does PUT, GET and HEAD of 4 KiB objects at a fixed concurrency
under uvloop with the GC settings of `run` (engine/cli/runtime.py), and reports its CPU (process_time: every thread)
per request. With `--base` an older engine tree (`git archive` of a commit) runs
the same load in alternating rounds, so the two figures share the machine's load.
Every GET is checked against what was PUT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


async def _load(endpoint: str, key: str, secret: str, requests: int, concurrency: int) -> dict:
    from engine.s3.client import S3Client

    client = S3Client(endpoint, key, secret, max_connections=concurrency * 2)
    body = os.urandom(4096)
    await client.put("bench", "warm", body, {"Content-Length": "4096"})
    per_worker = requests // (3 * concurrency)

    async def worker(n: int) -> None:
        for i in range(per_worker):
            name = f"w{n}/{i}"
            await client.put("bench", name, body, {"Content-Length": "4096"})
            async with client.get("bench", name) as (head, stream):
                if await stream.readexactly(head.size) != body:
                    raise SystemExit(f"GET {name} returned other bytes")
            await client.head("bench", name)

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await client.close()
    done = per_worker * concurrency * 3
    return {"requests": done, "cpu_us": cpu / done * 1e6, "req_per_s": done / wall}


def _child(args: argparse.Namespace) -> None:
    sys.path.insert(0, args.child_root)
    import uvloop

    from engine.cli.runtime import quiet_gc

    quiet_gc()  # as `run` does: without it the old client's garbage doubled its figure

    key, secret = os.environ["BENCH_S3_KEY"], os.environ["BENCH_S3_SECRET"]  # never on argv
    result = uvloop.run(_load(args.endpoint, key, secret, args.requests, args.concurrency))
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base", default="", help="an older tree holding engine/")
    parser.add_argument("--child-root", default="", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_root:
        _child(args)
        return
    sys.path.insert(0, str(ROOT))
    from minio import Minio

    from engine.demo.seaweed import SeaweedServer

    trees = {"now": str(ROOT)} | ({"base": args.base} if args.base else {})
    results: dict[str, list[dict]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="client-cpu-") as work:
        server = SeaweedServer(Path(work) / "s3").start()
        try:
            admin = Minio(
                server.endpoint.split("//", 1)[1],
                server.access_key,
                server.secret_key,
                secure=False,
            )
            admin.make_bucket("bench")
            for round_no in range(args.rounds):
                order = list(trees) if round_no % 2 == 0 else list(reversed(trees))
                for name in order:
                    env = {
                        **os.environ,
                        "BENCH_S3_KEY": server.access_key,
                        "BENCH_S3_SECRET": server.secret_key,
                    }
                    out = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--child-root",
                            trees[name],
                            "--endpoint",
                            server.endpoint,
                            "--requests",
                            str(args.requests),
                            "--concurrency",
                            str(args.concurrency),
                        ],
                        env=env,
                        capture_output=True,
                        text=True,
                        check=True,
                        cwd=trees[name],
                    )
                    result = json.loads(out.stdout.strip().splitlines()[-1])
                    result["load"] = os.getloadavg()[0]
                    results[name].append(result)
                    print(
                        f"round {round_no + 1} {name}: {result['cpu_us']:.0f} us CPU/request, "
                        f"{result['req_per_s']:.0f} req/s, load {result['load']:.1f}"
                    )
        finally:
            server.stop()
    for name, rows in results.items():
        print(f"{name}: median {statistics.median(r['cpu_us'] for r in rows):.0f} us CPU/request")


if __name__ == "__main__":
    main()
