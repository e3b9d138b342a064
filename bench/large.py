"""Large objects: mirrorline vs `rclone copy` at the same concurrency, on two real SeaweedFS servers.

    python bench/large.py [--objects 8] [--size-mib 64] [--rounds 3] [--workers 4]
                          [--json-out PATH]

Each round copies the same N objects (plain single-PUT sources, so their ETag is
their MD5) into a fresh versioned target bucket, three legs interleaved:
`rclone copy --transfers W --checkers W`, `mirrorline run --workers W
--until-synced` (equal concurrency), and `mirrorline run --until-synced` at the
default settings (the memory bound that matters). Per leg: wall clock from
launch to exit, MB/s, the tool's CPU seconds and peak RSS (both from wait4(2)
of that one child, so nothing else on the machine is counted), the CPU the two
servers spent meanwhile (/proc/<pid>/stat), and the load average. Every leg is
verified: the target lists exactly the N keys, each with the source's size and
MD5 ETag (SeaweedFS computes it from the bytes it stored), and one object per
leg is read back and compared byte for byte.

The headline figures are medians of per-round ratios (engine/rclone), never a
ratio of medians: the machine is shared, and only paired legs see the same load.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from bench.bulk_copy import (  # noqa: E402
    BenchFailure,
    make_client,
    make_versioned_bucket,
    mirrorline_binary,
    rclone_binary,
    rclone_env,
    run_command,
)
from engine.demo.seaweed import SeaweedServer  # noqa: E402

MiB = 1024 * 1024
SOURCE_BUCKET = "large-src"
LEGS = ("rclone", "engine", "engine-default")
TIMEOUT_S = 1800.0


@dataclass
class Leg:
    tool: str
    round: int
    seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    server_cpu_seconds: float
    load_average: float
    nbytes: int

    @property
    def mb_per_s(self) -> float:
        return self.nbytes / 1e6 / self.seconds

    @property
    def cpu_ns_per_byte(self) -> float:
        return 1e9 * self.cpu_seconds / self.nbytes


def server_cpu(servers: Sequence[SeaweedServer]) -> float:
    """CPU seconds used so far by the servers' processes (user + system)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for server in servers:
        if server.process is None:
            continue
        fields = Path(f"/proc/{server.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def high_water_mib(pid: int) -> float:
    """VmHWM: the process's peak RSS since its exec (wait4's ru_maxrss would also count
    the benchmark's own memory, inherited at fork)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def timed(args: Sequence[str], env: dict[str, str] | None) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MiB) of one child: CPU from its own wait4 rusage, RSS
    sampled every 20 ms (VmHWM only grows, so the last sample is the peak but the
    last 20 ms)."""
    started = time.perf_counter()
    peak = 0.0
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(list(args), env=env, stdout=out, stderr=out)
        deadline = started + TIMEOUT_S
        while True:
            peak = max(peak, high_water_mib(proc.pid))
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                raise BenchFailure(f"timed out: {' '.join(args)}")
            time.sleep(0.02)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            out.seek(0)
            tail = out.read().decode(errors="replace")[-2000:]
            raise BenchFailure(f"exit {proc.returncode}: {' '.join(args)}\n{tail}")
    return wall, usage.ru_utime + usage.ru_stime, peak


class Bench:
    def __init__(self, work: Path, objects: int, size: int, workers: int) -> None:
        self.work, self.objects, self.size, self.workers = work, objects, size, workers
        self.src = SeaweedServer(work / "server-a")
        self.dst = SeaweedServer(work / "server-b")
        self.digests: dict[str, str] = {}

    def start(self) -> None:
        self.src.start()
        self.dst.start()
        self.src_client, self.dst_client = make_client(self.src), make_client(self.dst)
        make_versioned_bucket(self.src_client, SOURCE_BUCKET)
        for i in range(self.objects):
            data = os.urandom(self.size)
            key = f"large/{i:03d}.bin"
            self.src_client.put_object(
                SOURCE_BUCKET, key, io.BytesIO(data), len(data), part_size=max(self.size, 5 * MiB)
            )
            self.digests[key] = hashlib.md5(data).hexdigest()
        config = self.work / "rclone.conf"
        config.write_text(
            "\n".join(
                f"[{name}]\ntype = s3\nprovider = Other\nendpoint = {s.endpoint}\n"
                f"region = us-east-1\naccess_key_id = {s.access_key}\n"
                f"secret_access_key = {s.secret_key}\n"
                for name, s in (("src", self.src), ("dst", self.dst))
            )
        )

    def stop(self) -> None:
        self.dst.stop()
        self.src.stop()

    def command(self, tool: str, bucket: str) -> tuple[list[str], dict[str, str] | None]:
        if tool == "rclone":
            n = str(self.workers)
            args = [rclone_binary(), "--config", str(self.work / "rclone.conf"), "copy"]
            return [
                *args,
                "--transfers",
                n,
                "--checkers",
                n,
                f"src:{SOURCE_BUCKET}",
                f"dst:{bucket}",
            ], rclone_env()
        state = Path(tempfile.mkdtemp(prefix=f"state-{bucket}-", dir=self.work))
        base = [str(mirrorline_binary()), "--state-dir", str(state)]
        for alias, server in (("src", self.src), ("dst", self.dst)):
            run_command(
                [
                    *base,
                    "alias",
                    "set",
                    alias,
                    server.endpoint,
                    server.access_key,
                    server.secret_key,
                ]
            )
        run_command(
            [*base, "replicate", "add", f"src/{SOURCE_BUCKET}", "--remote-target", f"dst/{bucket}"]
        )
        workers = ["--workers", str(self.workers)] if tool == "engine" else []
        return [*base, "run", *workers, "--until-synced"], None

    def leg(self, tool: str, round_no: int) -> Leg:
        bucket = f"{tool}-{round_no}"
        make_versioned_bucket(self.dst_client, bucket)
        args, env = self.command(tool, bucket)
        servers_before = server_cpu((self.src, self.dst))
        wall, cpu, rss = timed(args, env)
        servers = server_cpu((self.src, self.dst)) - servers_before
        self.verify(bucket)
        leg = Leg(
            tool, round_no, wall, cpu, rss, servers, os.getloadavg()[0], self.objects * self.size
        )
        print(
            f"  round {round_no} {tool:<15} {leg.mb_per_s:7.1f} MB/s {wall:7.2f} s "
            f"CPU {cpu:5.2f} s  RSS {rss:6.1f} MiB  servers {servers:5.2f} s  "
            f"load {leg.load_average:4.1f}  (verified)",
            file=sys.stderr,
            flush=True,
        )
        return leg

    def verify(self, bucket: str) -> None:
        listed = {
            str(o.object_name): (o.size, str(o.etag).strip('"'))
            for o in self.dst_client.list_objects(bucket, recursive=True)
        }
        wanted = {key: (self.size, md5) for key, md5 in self.digests.items()}
        if listed != wanted:
            raise BenchFailure(f"{bucket}: target listing differs from the source's")
        key = random.choice(sorted(self.digests))
        response = self.dst_client.get_object(bucket, key)
        try:
            digest = hashlib.md5(response.read()).hexdigest()
        finally:
            response.close()
            response.release_conn()
        if digest != self.digests[key]:
            raise BenchFailure(f"{bucket}/{key}: content differs from the source")


def paired(legs: list[Leg], tool: str, value: str) -> list[float]:
    """Per round: the tool's figure over rclone's."""
    by = {(leg.tool, leg.round): leg for leg in legs}
    return [
        getattr(by[tool, r], value) / getattr(by["rclone", r], value)
        for r in sorted({leg.round for leg in legs})
        if (tool, r) in by and ("rclone", r) in by
    ]


def summarize(legs: list[Leg], bench: Bench, rounds: int) -> dict[str, Any]:
    def median(tool: str, value: str) -> float:
        return round(statistics.median(getattr(x, value) for x in legs if x.tool == tool), 3)

    tools = {
        tool: {
            "mb_per_s": median(tool, "mb_per_s"),
            "cpu_seconds": median(tool, "cpu_seconds"),
            "cpu_ns_per_byte": median(tool, "cpu_ns_per_byte"),
            "peak_rss_mib": max(x.peak_rss_mib for x in legs if x.tool == tool),
            "server_cpu_seconds": median(tool, "server_cpu_seconds"),
        }
        for tool in LEGS
        if any(x.tool == tool for x in legs)
    }
    ratios = {
        f"{tool}_{name}": [round(x, 3) for x in paired(legs, tool, value)]
        for tool in ("engine", "engine-default")
        for name, value in (("speed", "mb_per_s"), ("cpu_per_byte", "cpu_ns_per_byte"))
    }
    return {
        "bench": "large",
        "objects": bench.objects,
        "object_mib": bench.size // MiB,
        "rounds": rounds,
        "workers": bench.workers,
        "tools": tools,
        "ratios": ratios,
        "ratio_medians": {k: round(statistics.median(v), 3) for k, v in ratios.items() if v},
        "load_average": [round(x.load_average, 2) for x in legs],
        "legs": [{**asdict(x), "mb_per_s": round(x.mb_per_s, 2)} for x in legs],
    }


def run(quick: bool) -> dict[str, Any]:
    """The suite's entry point: quick is 4 x 64 MiB, one round; else 8 x 64 MiB, 3 rounds."""
    return measure(objects=4 if quick else 8, size=64 * MiB, rounds=1 if quick else 3, workers=4)


def measure(objects: int, size: int, rounds: int, workers: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-large-") as tmp:
        bench = Bench(Path(tmp), objects, size, workers)
        legs: list[Leg] = []
        try:
            bench.start()
            for round_no in range(1, rounds + 1):
                order = LEGS if round_no % 2 else tuple(reversed(LEGS))
                legs.extend(bench.leg(tool, round_no) for tool in order)
        finally:
            bench.stop()
        return summarize(legs, bench, rounds)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=8)
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--workers", type=int, default=4, help="rclone --transfers = engine --workers"
    )
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    if min(args.objects, args.size_mib, args.rounds, args.workers) < 1 or args.rounds > 3:
        parser.error("positive sizes and counts; at most 3 rounds (SeaweedFS slows with buckets)")
    try:
        summary = measure(args.objects, args.size_mib * MiB, args.rounds, args.workers)
    except BenchFailure as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary["tools"], indent=1))
    print(json.dumps(summary["ratio_medians"]))
    line = json.dumps(summary)
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(line + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
