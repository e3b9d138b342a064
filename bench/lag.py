"""Replication latency from outside, beside what the engine reports, scan-only and with events.

    python bench/lag.py [--rate 20] [--seconds 60] [--modes scan,events] [--json-out PATH]

A writer puts `rate` new 4 KiB objects a second into a versioned bucket on one
SeaweedFS server, for `seconds`; `mirrorline run --listen` replicates them to a
second one. A watcher lists the target every ~50 ms and notes when each key first
shows there. Outside latency = first seen on the target - the source's answer to
the PUT (when it accepted the write). In `events` mode each write is also posted
to the engine's /v1/events/minio as MinIO's notify_webhook would (with the
source's answer time as eventTime, in milliseconds).

Once the watcher has seen every key, the engine's own `/v1/status` is read: its
last-minute percentiles are printed beside the outside ones for the writes that
landed in that same minute. The watcher's own resolution (its poll period) is
reported; SeaweedFS listings carry whole-second LastModified, so scan-path
figures from the engine have a 1 s resolution (it counts from the middle of that
second: see engine/telemetry/stats.py). Every key is checked on the target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bulk_copy as bc

from engine.demo.events import WebhookFeed
from engine.demo.mix import Kind, Op
from engine.demo.seaweed import SeaweedServer, free_port_set
from engine.demo.workload import Write
from engine.s3.client import S3Client

BUCKET = "lag-src"
TARGET = "lag-dst"
POLL_S = 0.05
BODY = b"x" * 4096


def pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, math.ceil(len(ordered) * q / 100) - 1)], 3)


def summary(values: Sequence[float]) -> dict[str, Any]:
    return {"count": len(values), "p50": pct(values, 50), "p99": pct(values, 99)}


async def write_all(
    src: S3Client, rate: float, seconds: float, feed: WebhookFeed | None, accepted: dict[str, float]
) -> None:
    """Puts at a steady rate (each on its own task, so a slow PUT does not shift the rest)."""
    count = int(rate * seconds)
    started = time.monotonic()

    async def one(i: int) -> None:
        key = f"w/{i:06d}"
        version, etag = await src.put(BUCKET, key, BODY, {"Content-Length": str(len(BODY))})
        accepted[key] = time.time()
        if feed is not None:
            op = Op(index=i, kind=Kind.CREATE, key=key, size=len(BODY))
            await feed(Write(op, version, accepted[key], etag))

    tasks = []
    for i in range(count):
        delay = started + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)


async def watch(
    dst: S3Client,
    expected: int,
    seen: dict[str, float],
    first: dict[str, str],
    done: asyncio.Event,
    deadline: float,
) -> None:
    """List the target from the first key not yet seen, every POLL_S, until all are there."""
    while len(seen) < expected and time.monotonic() < deadline:
        low = next((f"w/{i:06d}" for i in range(expected) if f"w/{i:06d}" not in seen), "")
        marker = f"w/{int(low[2:]) - 1:06d}" if low and low != "w/000000" else ""
        pages = dst.list_versions(TARGET, "w/", key_marker=marker)
        async for page in pages:
            now = time.time()
            for v in page:
                if v.key not in seen:
                    seen[v.key] = now
                    first[v.key] = v.version_id
        await asyncio.sleep(POLL_S)
    done.set()


async def recopied(dst: S3Client, first: dict[str, str]) -> list[str]:
    """Keys whose target now holds anything but the one version the watcher saw first.

    A replica deleted by a scan and copied again (the event-path race) shows here
    even when the watcher's first sighting was on time.
    """
    versions: dict[str, list[str]] = {}
    async for page in dst.list_versions(TARGET, "w/"):
        for v in page:
            versions.setdefault(v.key, []).append(v.version_id)
    return sorted(k for k, ids in versions.items() if ids != [first.get(k)])


async def engine_status(url: str, token: str) -> dict[str, Any]:
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(f"{url}/v1/status", headers=auth)
        r.raise_for_status()
        return r.json()  # type: ignore[no-any-return]


async def wait_api(url: str, token: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            await engine_status(url, token)
            return
        except (httpx.HTTPError, OSError):
            await asyncio.sleep(0.2)
    raise bc.BenchFailure(f"the engine's API at {url} did not answer")


async def caught_up(url: str, token: str, writes: int, within: float = 5.0) -> dict[str, Any]:
    """The engine's status once its snapshot (refreshed every second) shows every copy.

    Some copies may end as "already there" and never count, so after `within`
    seconds the latest snapshot is taken as it is.
    """
    deadline = time.monotonic() + within
    while True:
        status = await engine_status(url, token)
        counted = status["policies"][0]["latency"].get("1m", {}).get("all", {}).get("count", 0)
        if counted >= writes or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.25)


def start_engine(
    work: Path, mode: str, servers: list[SeaweedServer]
) -> tuple[subprocess.Popen[bytes], str, str]:
    """Configure a state dir and start `run --listen`; returns (process, API url, token)."""
    for server, bucket in zip(servers, (BUCKET, TARGET), strict=True):
        bc.make_versioned_bucket(bc.make_client(server), bucket)
    state = work / f"state-{mode}"
    base = [str(bc.mirrorline_binary()), "--state-dir", str(state)]
    for alias, s in zip(("src", "dst"), servers, strict=True):
        bc.run_command([*base, "alias", "set", alias, s.endpoint, s.access_key, s.secret_key])
    bc.run_command([*base, "replicate", "add", f"src/{BUCKET}", "--remote-target", f"dst/{TARGET}"])
    port = free_port_set(1)[0]
    with open(work / f"engine-{mode}.log", "wb") as log:
        proc = subprocess.Popen(
            [*base, "run", "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=log
        )
    token_path = state / "api-token"
    deadline = time.monotonic() + 60
    while not token_path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return proc, f"http://127.0.0.1:{port}", token_path.read_text().strip()


async def observe(
    servers: list[SeaweedServer], url: str, token: str, mode: str, rate: float, seconds: float
) -> tuple[dict[str, float], dict[str, float], float, dict[str, Any]]:
    """Write, watch and read the engine's status: (accepted, seen, read at, status)."""
    src, dst = (S3Client(s.endpoint, s.access_key, s.secret_key) for s in servers)
    feed = WebhookFeed(url, token, BUCKET, "src") if mode == "events" else None
    try:
        await wait_api(url, token, time.monotonic() + 60)
        accepted: dict[str, float] = {}
        seen: dict[str, float] = {}
        first: dict[str, str] = {}
        done = asyncio.Event()
        expected = int(rate * seconds)
        watcher = asyncio.create_task(
            watch(dst, expected, seen, first, done, time.monotonic() + seconds + 120)
        )
        await write_all(src, rate, seconds, feed, accepted)
        await done.wait()
        read_at = time.time()
        status = await caught_up(url, token, len(accepted))
        await watcher
        status["recopied"] = await recopied(dst, first)
    finally:
        for closing in (src, dst, feed):
            if closing is not None:
                await closing.close()
    return accepted, seen, read_at, status


def one_mode(work: Path, mode: str, rate: float, seconds: float) -> dict[str, Any]:
    servers = [SeaweedServer(work / f"{mode}-a").start(), SeaweedServer(work / f"{mode}-b").start()]
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc, url, token = start_engine(work, mode, servers)
        accepted, seen, read_at, status = asyncio.run(
            observe(servers, url, token, mode, rate, seconds)
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(60)
        for s in servers:
            s.stop()
    if len(seen) != len(accepted):
        raise bc.BenchFailure(f"{mode}: {len(seen)} of {len(accepted)} keys reached the target")
    minute = [seen[k] - accepted[k] for k in accepted if seen[k] >= read_at - 60]
    policy = status["policies"][0]
    engine = policy["latency"]["1m"]["all"]
    return {
        "outside": summary(minute),
        "engine": {"count": engine["count"], "p50": engine["p50"], "p99": engine["p99"]},
        "engine_resolution_s": engine.get("resolution"),
        "watcher_poll_s": POLL_S,
        "writes": len(accepted),
        "recopied_keys": len(status["recopied"]),
        "verified": True,
    }


def agrees(outside: float | None, engine: float | None) -> bool:
    if outside is None or engine is None:
        return False
    return abs(engine - outside) <= max(0.2, 0.1 * outside)


def measure(rate: float, seconds: float, modes: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"bench": "lag", "rate": rate, "seconds": seconds, "modes": {}}
    with tempfile.TemporaryDirectory(prefix="bench-lag-") as tmp:
        for mode in modes:
            print(
                f"  lag: {mode} mode, {rate:g} writes/s for {seconds:g} s",
                file=sys.stderr,
                flush=True,
            )
            result = one_mode(Path(tmp), mode, rate, seconds)
            result["agree_p50"] = agrees(result["outside"]["p50"], result["engine"]["p50"])
            result["agree_p99"] = agrees(result["outside"]["p99"], result["engine"]["p99"])
            out["modes"][mode] = result
    return out


def print_table(result: dict[str, Any]) -> None:
    print(
        f"\nlatency, {result['rate']:g} writes/s for {result['seconds']:g} s "
        "(last minute; outside = watcher on the target)"
    )
    print(
        f"{'mode':<7} {'outside p50':>11} {'engine p50':>10} {'outside p99':>11} "
        f"{'engine p99':>10} {'n out/eng':>10}  within 10% or 0.2 s"
    )
    for mode, m in result["modes"].items():
        o, e = m["outside"], m["engine"]
        print(
            f"{mode:<7} {o['p50']:>11} {e['p50']:>10} {o['p99']:>11} {e['p99']:>10} "
            f"{o['count']:>4}/{e['count']:<5}  p50 {'yes' if m['agree_p50'] else 'NO'}, "
            f"p99 {'yes' if m['agree_p99'] else 'NO'}; {m['recopied_keys']} re-copied"
        )


def run(quick: bool) -> dict[str, Any]:
    """For `python -m bench`: 20 writes/s for 30 s (quick) or 60 s, in both modes."""
    result = measure(20.0, 30.0 if quick else 60.0, ("scan", "events"))
    print_table(result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--modes", default="scan,events")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    try:
        result = measure(args.rate, args.seconds, args.modes.split(","))
    except bc.BenchFailure as exc:
        print(f"lag: FAILED: {exc}", file=sys.stderr)
        return 1
    print_table(result)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
