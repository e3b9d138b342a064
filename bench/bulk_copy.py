"""Bulk copy: mirrorline vs `rclone copy`, side by side, on two real SeaweedFS servers.

    python bench/bulk_copy.py [--objects 5000] [--rounds 3] [--workers 32]
                              [--only both|rclone|mirrorline] [--json-out PATH]

What it measures: the wall-clock throughput (objects per second) and the CPU cost
(CPU ms per object, the tool process and its children) of replicating N existing
4 KiB objects from a versioned bucket on server A into a fresh, empty, versioned
bucket on server B.

- mirrorline: `mirrorline --state-dir D run --workers W --until-synced` (scan,
  replicate everything, exit once the queue is drained), with a fresh state dir
  and fresh target bucket `ml-K` each round. Only that command is timed; the
  `alias set` / `replicate add` configuration steps are not.
- rclone: `rclone copy --transfers 16 --checkers 16 src:bench-src dst:rclone-K`.

Every round is verified: the target must list exactly the N source keys and a
sample of ~20 objects must have the seeded bytes. A round that does not verify
(or a tool that exits non-zero) fails the benchmark with exit status 1.

Why ratios: the machine is shared and noisy, so absolute obj/s drift from one
minute to the next. Rounds are interleaved (mirrorline, rclone, mirrorline,
rclone, ...) so both tools see the same drift, and the headline figure is the
median of the per-round paired ratios mirrorline/rclone, not a ratio of means.

Prints a human table, then one JSON line with all the figures.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import io
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import urllib3
from minio import Minio
from minio.error import S3Error
from minio.versioningconfig import ENABLED, VersioningConfig

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from engine.demo.seaweed import SeaweedServer  # noqa: E402

SOURCE_BUCKET = "bench-src"
OBJECT_SIZE = 4096
SEED_THREADS = 16
SPOT_CHECKS = 20
RCLONE_TRANSFERS = 16
RCLONE_CHECKERS = 16
MAX_TARGET_BUCKETS = 9  # plus the source bucket: SeaweedFS degrades with many buckets
COMMAND_TIMEOUT_S = 1800.0
TOOLS = ("mirrorline", "rclone")


class BenchFailure(Exception):
    """A tool failed or a round did not verify: the benchmark exits 1."""


@dataclass
class RoundResult:
    tool: str
    round: int
    bucket: str
    seconds: float
    cpu_seconds: float
    objects: int

    @property
    def obj_per_s(self) -> float:
        return self.objects / self.seconds

    @property
    def cpu_ms_per_obj(self) -> float:
        return 1000.0 * self.cpu_seconds / self.objects


@dataclass
class Bench:
    """Everything a round needs: both servers, their clients and the seeded data."""

    src: SeaweedServer
    dst: SeaweedServer
    src_client: Minio
    dst_client: Minio
    seeded: dict[str, bytes]
    work_dir: Path
    workers: int
    results: list[RoundResult] = field(default_factory=list)


# -- S3 helpers (setup and verification only; never timed) -------------------


def make_client(server: SeaweedServer) -> Minio:
    http = urllib3.PoolManager(
        maxsize=SEED_THREADS * 2,
        timeout=urllib3.Timeout(connect=10, read=60),
        retries=urllib3.Retry(total=5, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )
    host = server.endpoint.removeprefix("http://")
    return Minio(
        host,
        server.access_key,
        server.secret_key,
        secure=False,
        region="us-east-1",
        http_client=http,
    )


def make_versioned_bucket(client: Minio, bucket: str) -> None:
    client.make_bucket(bucket)
    client.set_bucket_versioning(bucket, VersioningConfig(ENABLED))


def seed_objects(client: Minio, bucket: str, count: int) -> dict[str, bytes]:
    """Put `count` random 4 KiB objects; return key -> content."""
    seeded = {f"obj/{i:06d}": os.urandom(OBJECT_SIZE) for i in range(count)}

    def put(key: str) -> None:
        data = seeded[key]
        client.put_object(bucket, key, io.BytesIO(data), len(data))

    with concurrent.futures.ThreadPoolExecutor(SEED_THREADS) as pool:
        for future in concurrent.futures.as_completed([pool.submit(put, k) for k in seeded]):
            future.result()
    return seeded


def list_keys(client: Minio, bucket: str) -> list[str]:
    return [str(obj.object_name) for obj in client.list_objects(bucket, recursive=True)]


def read_object(client: Minio, bucket: str, key: str) -> bytes:
    response = client.get_object(bucket, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


def verify_target(bench: Bench, bucket: str) -> None:
    """The target must hold exactly the seeded keys; a sample must match byte for byte."""
    keys = list_keys(bench.dst_client, bucket)
    missing = bench.seeded.keys() - set(keys)
    extra = set(keys) - bench.seeded.keys()
    if missing or extra or len(keys) != len(bench.seeded):
        raise BenchFailure(
            f"{bucket}: listed {len(keys)} objects, expected {len(bench.seeded)} "
            f"({len(missing)} missing, e.g. {sorted(missing)[:3]}; "
            f"{len(extra)} unexpected, e.g. {sorted(extra)[:3]})"
        )
    sample = random.sample(sorted(bench.seeded), min(SPOT_CHECKS, len(bench.seeded)))
    for key in sample:
        if read_object(bench.dst_client, bucket, key) != bench.seeded[key]:
            raise BenchFailure(f"{bucket}/{key}: content differs from the source")


# -- timed subprocess ---------------------------------------------------------


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_command(
    args: Sequence[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run to completion; raise BenchFailure with the output tail on failure."""
    try:
        done = subprocess.run(
            list(args), env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchFailure(f"timed out after {COMMAND_TIMEOUT_S:.0f}s: {' '.join(args)}") from exc
    except OSError as exc:
        raise BenchFailure(f"cannot run {args[0]}: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip()[-2000:]
        raise BenchFailure(f"exit {done.returncode}: {' '.join(args)}\n{tail}")
    return done


def timed_command(args: Sequence[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Return (wall seconds, CPU seconds of the process and its reaped children)."""
    cpu_before = children_cpu_seconds()
    started = time.perf_counter()
    run_command(args, env)
    wall = time.perf_counter() - started
    return wall, children_cpu_seconds() - cpu_before


# -- the two tools ------------------------------------------------------------


def rclone_binary() -> str:
    return "/usr/bin/rclone" if Path("/usr/bin/rclone").exists() else "rclone"


def mirrorline_binary() -> Path:
    beside_python = Path(sys.executable).parent / "mirrorline"
    return beside_python if beside_python.exists() else REPO_ROOT / ".venv" / "bin" / "mirrorline"


def rclone_env() -> dict[str, str]:
    """rclone fails with AWS_CA_BUNDLE set (as this machine sets it): drop it."""
    return {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}


def write_rclone_config(bench: Bench) -> Path:
    sections = []
    for name, server in (("src", bench.src), ("dst", bench.dst)):
        sections.append(
            f"[{name}]\n"
            "type = s3\n"
            "provider = Other\n"
            f"endpoint = {server.endpoint}\n"
            "region = us-east-1\n"
            f"access_key_id = {server.access_key}\n"
            f"secret_access_key = {server.secret_key}\n"
        )
    path = bench.work_dir / "rclone.conf"
    path.write_text("\n".join(sections))
    return path


def run_rclone(bench: Bench, bucket: str) -> tuple[float, float]:
    config = bench.work_dir / "rclone.conf"
    if not config.exists():
        config = write_rclone_config(bench)
    args = [
        rclone_binary(),
        "--config",
        str(config),
        "copy",
        "--transfers",
        str(RCLONE_TRANSFERS),
        "--checkers",
        str(RCLONE_CHECKERS),
        f"src:{SOURCE_BUCKET}",
        f"dst:{bucket}",
    ]
    return timed_command(args, rclone_env())


def run_mirrorline(bench: Bench, bucket: str) -> tuple[float, float]:
    state_dir = Path(tempfile.mkdtemp(prefix=f"state-{bucket}-", dir=bench.work_dir))
    base = [str(mirrorline_binary()), "--state-dir", str(state_dir)]
    for alias, server in (("src", bench.src), ("dst", bench.dst)):
        run_command(
            [*base, "alias", "set", alias, server.endpoint, server.access_key, server.secret_key]
        )
    run_command(
        [*base, "replicate", "add", f"src/{SOURCE_BUCKET}", "--remote-target", f"dst/{bucket}"]
    )
    return timed_command([*base, "run", "--workers", str(bench.workers), "--until-synced"])


RUNNERS: dict[str, Callable[[Bench, str], tuple[float, float]]] = {
    "mirrorline": run_mirrorline,
    "rclone": run_rclone,
}
BUCKET_PREFIX = {"mirrorline": "ml", "rclone": "rclone"}


def run_round(bench: Bench, tool: str, round_no: int) -> RoundResult:
    bucket = f"{BUCKET_PREFIX[tool]}-{round_no}"
    make_versioned_bucket(bench.dst_client, bucket)
    seconds, cpu = RUNNERS[tool](bench, bucket)
    verify_target(bench, bucket)
    result = RoundResult(tool, round_no, bucket, seconds, cpu, len(bench.seeded))
    print(
        f"  round {round_no} {tool:<10} {result.obj_per_s:8.0f} obj/s  "
        f"{seconds:7.2f} s  {result.cpu_ms_per_obj:6.3f} CPU ms/obj  (verified)",
        file=sys.stderr,
        flush=True,
    )
    return result


# -- reporting ----------------------------------------------------------------


def tool_summary(results: list[RoundResult], tool: str) -> dict[str, Any] | None:
    mine = [r for r in results if r.tool == tool]
    if not mine:
        return None
    obj_s = [r.obj_per_s for r in mine]
    cpu = [r.cpu_ms_per_obj for r in mine]
    return {
        "obj_per_s": [round(x, 1) for x in obj_s],
        "median_obj_per_s": round(statistics.median(obj_s), 1),
        "seconds": [round(r.seconds, 3) for r in mine],
        "cpu_ms_per_obj": [round(x, 4) for x in cpu],
        "median_cpu_ms_per_obj": round(statistics.median(cpu), 4),
    }


def paired_ratios(results: list[RoundResult]) -> list[float]:
    """mirrorline/rclone obj/s, per round where both tools ran."""
    by_key = {(r.tool, r.round): r for r in results}
    rounds = sorted({r.round for r in results})
    return [
        by_key["mirrorline", k].obj_per_s / by_key["rclone", k].obj_per_s
        for k in rounds
        if ("mirrorline", k) in by_key and ("rclone", k) in by_key
    ]


def summarize(args: argparse.Namespace, results: list[RoundResult]) -> dict[str, Any]:
    ratios = paired_ratios(results)
    return {
        "bench": "bulk_copy",
        "objects": args.objects,
        "object_size": OBJECT_SIZE,
        "rounds": args.rounds,
        "workers": args.workers,
        "rclone_transfers": RCLONE_TRANSFERS,
        "rclone_checkers": RCLONE_CHECKERS,
        "mirrorline": tool_summary(results, "mirrorline"),
        "rclone": tool_summary(results, "rclone"),
        "ratio_per_round": [round(x, 3) for x in ratios],
        "ratio_median": round(statistics.median(ratios), 3) if ratios else None,
        "cpu_ratio_median": cpu_ratio_median(results),
        "rounds_detail": [{**asdict(r), "obj_per_s": round(r.obj_per_s, 1)} for r in results],
    }


def cpu_ratio_median(results: list[RoundResult]) -> float | None:
    """mirrorline/rclone CPU ms per object, median over paired rounds."""
    by_key = {(r.tool, r.round): r for r in results}
    ratios = [
        by_key["mirrorline", k].cpu_ms_per_obj / by_key["rclone", k].cpu_ms_per_obj
        for (tool, k) in by_key
        if tool == "mirrorline" and ("rclone", k) in by_key and by_key["rclone", k].cpu_seconds
    ]
    return round(statistics.median(ratios), 3) if ratios else None


def print_table(results: list[RoundResult], summary: dict[str, Any]) -> None:
    print(f"\nbulk copy: {summary['objects']} x {OBJECT_SIZE} B objects, SeaweedFS -> SeaweedFS")
    print(f"{'round':>6}  {'tool':<10} {'obj/s':>9} {'seconds':>9} {'CPU ms/obj':>11}")
    for r in results:
        print(
            f"{r.round:>6}  {r.tool:<10} {r.obj_per_s:>9.0f} {r.seconds:>9.2f} "
            f"{r.cpu_ms_per_obj:>11.3f}"
        )
    for tool in TOOLS:
        s = summary[tool]
        if s is not None:
            print(
                f"{'median':>6}  {tool:<10} {s['median_obj_per_s']:>9.0f} {'':>9} "
                f"{s['median_cpu_ms_per_obj']:>11.3f}"
            )
    if summary["ratio_median"] is not None:
        per_round = ", ".join(f"{x:.2f}" for x in summary["ratio_per_round"])
        print(f"mirrorline/rclone obj/s: median {summary['ratio_median']:.2f} ({per_round})")
        if summary["cpu_ratio_median"] is not None:
            print(f"mirrorline/rclone CPU per object: median {summary['cpu_ratio_median']:.2f}")


# -- driver -------------------------------------------------------------------


def schedule(rounds: int, only: str) -> list[tuple[str, int]]:
    """Interleaved: (mirrorline, 1), (rclone, 1), (mirrorline, 2), ..."""
    tools = TOOLS if only == "both" else (only,)
    return [(tool, k) for k in range(1, rounds + 1) for tool in tools]


def run(args: argparse.Namespace) -> tuple[list[RoundResult], str | None]:
    """Run every round; return the results and the failure message, if any."""
    plan = schedule(args.rounds, args.only)
    with tempfile.TemporaryDirectory(prefix="bulk-copy-") as tmp:
        work = Path(tmp)
        src = SeaweedServer(work / "server-a")
        dst = SeaweedServer(work / "server-b")
        results: list[RoundResult] = []
        try:
            src.start()
            dst.start()
            bench = Bench(
                src, dst, make_client(src), make_client(dst), {}, work, args.workers, results
            )
            make_versioned_bucket(bench.src_client, SOURCE_BUCKET)
            started = time.perf_counter()
            bench.seeded = seed_objects(bench.src_client, SOURCE_BUCKET, args.objects)
            print(
                f"seeded {args.objects} objects in {time.perf_counter() - started:.1f} s; "
                f"A={src.endpoint} B={dst.endpoint}",
                file=sys.stderr,
                flush=True,
            )
            for tool, round_no in plan:
                results.append(run_round(bench, tool, round_no))
        except (BenchFailure, S3Error) as exc:
            return results, str(exc)
        finally:
            dst.stop()
            src.stop()
    return results, None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=5000, help="objects to copy (4 KiB each)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per tool")
    parser.add_argument("--workers", type=int, default=32, help="mirrorline run --workers")
    parser.add_argument("--only", choices=("both", *TOOLS), default="both")
    parser.add_argument("--json-out", type=Path, help="also write the JSON summary here")
    args = parser.parse_args(argv)
    if args.objects < 1 or args.rounds < 1 or args.workers < 1:
        parser.error("--objects, --rounds and --workers must be positive")
    if len(schedule(args.rounds, args.only)) > MAX_TARGET_BUCKETS:
        parser.error(
            f"at most {MAX_TARGET_BUCKETS} target buckets (one per tool per round): "
            "SeaweedFS degrades with many buckets"
        )
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results, failure = run(args)
    summary = summarize(args, results)
    summary["ok"] = failure is None
    if failure is not None:
        summary["error"] = failure
        print(f"FAILED: {failure}", file=sys.stderr)
    if results:
        print_table(results, summary)
    line = json.dumps(summary)
    print(line)
    if args.json_out is not None:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(line + "\n")
    return 0 if failure is None else 1


if __name__ == "__main__":
    sys.exit(main())
