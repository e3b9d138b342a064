"""Webhook events per second through `/v1/events/minio`, one record a post.

    python bench/events.py [--events 300] [--tree /tmp/old-tree]

Two SeaweedFS servers; `mirrorline run --listen --scan-interval 3600` replicates a
versioned bucket from one to the other. Once its first scan has found the bucket
empty, `events` objects are written to the source, and then posted one record a
request, in turn, as MinIO's `notify_webhook` would (its queue sends one record
per request). Prints one JSON line: posts per second, the engine's CPU seconds
over the posts (from /proc), and whether every object reached the target (the
copies come from the events alone: the next scan is an hour away). `--tree ROOT`
runs an older `engine/` package (e.g. from `git archive`) as the engine.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bulk_copy as bc

from engine.demo.events import minio_record
from engine.demo.mix import Kind, Op
from engine.demo.seaweed import SeaweedServer, free_port_set
from engine.demo.workload import Write

SOURCE = "events-src"
TARGET = "events-dst"
BODY = b"e" * 1024


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_engine(work: Path, servers: list[SeaweedServer]) -> tuple[subprocess.Popen[bytes], str]:
    state = work / "state"
    base = [str(bc.mirrorline_binary()), "--state-dir", str(state)]
    for alias, s in zip(("src", "dst"), servers, strict=True):
        bc.run_command([*base, "alias", "set", alias, s.endpoint, s.access_key, s.secret_key])
    bc.run_command([*base, "replicate", "add", f"src/{SOURCE}", "--remote-target", f"dst/{TARGET}"])
    url = f"http://127.0.0.1:{free_port_set(1)[0]}"
    with open(work / "engine.log", "wb") as log:
        proc = subprocess.Popen(
            [*base, "run", "--listen", url.removeprefix("http://"), "--scan-interval", "3600"],
            stdout=log,
            stderr=log,
        )
    return proc, url


def first_scan_done(api: httpx.Client, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            policies = api.get("/v1/status").json()["policies"]
            if policies and policies[0]["scans"] >= 1:
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    raise bc.BenchFailure("the engine's first scan did not finish")


def write_objects(server: SeaweedServer, count: int) -> list[Write]:
    client = bc.make_client(server)

    def one(i: int) -> Write:
        key = f"e/{i:06d}"
        put = client.put_object(SOURCE, key, io.BytesIO(BODY), len(BODY))
        return Write(
            Op(index=i, kind=Kind.CREATE, key=key, size=len(BODY)),
            put.version_id or "null",
            time.time(),
            put.etag,
        )

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(count)))


def landed(server: SeaweedServer, count: int, deadline: float) -> int:
    client = bc.make_client(server)
    while True:
        found = len(bc.list_keys(client, TARGET))
        if found >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def measure(work: Path, count: int) -> dict[str, Any]:
    servers = [SeaweedServer(work / "a").start(), SeaweedServer(work / "b").start()]
    proc: subprocess.Popen[bytes] | None = None
    try:
        for server, bucket in zip(servers, (SOURCE, TARGET), strict=True):
            bc.make_versioned_bucket(bc.make_client(server), bucket)
        proc, url = start_engine(work, servers)
        token_path = work / "state" / "api-token"
        deadline = time.monotonic() + 60
        while not token_path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        headers = {"Authorization": f"Bearer {token_path.read_text().strip()}"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as api:
            first_scan_done(api, time.monotonic() + 60)
            writes = write_objects(servers[0], count)
            cpu_before, started = cpu_seconds(proc.pid), time.perf_counter()
            for write in writes:
                answer = api.post(
                    "/v1/events/minio", json={"Records": [minio_record(SOURCE, write)]}
                )
                if answer.status_code != 200 or answer.json()["enqueued"] != 1:
                    raise bc.BenchFailure(f"event refused: {answer.status_code} {answer.text}")
            elapsed = time.perf_counter() - started
            cpu = cpu_seconds(proc.pid) - cpu_before
        copied = landed(servers[1], count, time.monotonic() + 120)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(60)
        for server in servers:
            server.stop()
    if copied < count:
        raise bc.BenchFailure(f"{copied} of {count} objects reached the target")
    return {
        "events": count,
        "events_per_s": round(count / elapsed, 1),
        "engine_cpu_s": round(cpu, 2),
        "engine_cpu_ms_per_event": round(1000 * cpu / count, 2),
        "all_copied": True,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--tree", type=Path, help="an engine tree to run instead of this one")
    args = parser.parse_args()
    if args.tree:  # the engine and the CLI calls; this process keeps its own tree
        os.environ["PYTHONPATH"] = str(args.tree.resolve())
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        result = measure(Path(tmp), args.events)
    result |= {"tree": str(args.tree or "."), "loadavg": os.getloadavg()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
