"""Small objects at equal concurrency: mirrorline vs `rclone copy`, with CPU and machine share.

    python bench/small.py [--objects 5000] [--rounds 5] [--concurrency 16,32]
                          [--variant NAME:ROOT[:K=V,...]] [--json-out PATH]

Each leg replicates N existing 4 KiB objects from a versioned bucket on server A
into a fresh versioned bucket on server B: `mirrorline run --workers C
--until-synced` against `rclone copy --transfers C --checkers C`, the same C.
A round runs every tool at every concurrency, in an order that alternates from
round to round; the target server restarts on an empty data dir before each
round (SeaweedFS slows down as buckets and versions pile up on it).

Per leg: wall seconds from launch to exit, the tool's CPU (its rusage), each
server's CPU (/proc), the machine's busy cores over the leg (/proc/stat: the
tool, both servers and whatever else runs on this shared box), and the 1-minute
load average when the leg started. Every leg is verified (bulk_copy.verify_target).
The headline is the median of per-round paired ratios, mirrorline / rclone.

`--variant` adds another mirrorline: its engine package from ROOT (a directory
holding `engine/`, e.g. an export of an older commit) and/or extra environment,
e.g. `--variant stock::MIRRORLINE_LOOP=asyncio` for the stock event loop.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bulk_copy as bc
from machine import MachineMeter, proc_cpu_seconds

from engine.demo.seaweed import SeaweedServer


@dataclass
class Variant:
    """One mirrorline build to time: an engine tree (or the installed one) and extra env."""

    name: str
    root: str = ""
    env: dict[str, str] | None = None

    def command(self) -> list[str]:
        if self.root:
            return [sys.executable, "-m", "engine.cli"]
        return [str(bc.mirrorline_binary())]

    def environ(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.root:
            env["PYTHONPATH"] = self.root
        env.update(self.env or {})
        return env


@dataclass
class Leg:
    tool: str
    concurrency: int
    round: int
    seconds: float
    tool_cpu: float
    source_cpu: float
    target_cpu: float
    busy_cores: float
    load_1m: float
    objects: int

    @property
    def obj_per_s(self) -> float:
        return self.objects / self.seconds


def parse_variant(text: str) -> Variant:
    name, _, rest = text.partition(":")
    root, _, env_text = rest.partition(":")
    env = dict(pair.split("=", 1) for pair in env_text.split(",") if pair)
    return Variant(name, str(Path(root).resolve()) if root else "", env)


def mirrorline_command(
    variant: Variant,
    servers: tuple[SeaweedServer, SeaweedServer],
    bucket: str,
    workers: int,
    work: Path,
) -> tuple[list[str], dict[str, str]]:
    """Configure a fresh state dir (untimed) and return the timed `run` command."""
    state = Path(tempfile.mkdtemp(prefix=f"state-{bucket}-", dir=work))
    base = [*variant.command(), "--state-dir", str(state)]
    env = variant.environ()
    for alias, server in zip(("src", "dst"), servers, strict=True):
        bc.run_command(
            [*base, "alias", "set", alias, server.endpoint, server.access_key, server.secret_key],
            env,
        )
    bc.run_command(
        [*base, "replicate", "add", f"src/{bc.SOURCE_BUCKET}", "--remote-target", f"dst/{bucket}"],
        env,
    )
    return [*base, "run", "--workers", str(workers), "--until-synced"], env


def rclone_command(config: Path, bucket: str, transfers: int) -> list[str]:
    return [
        bc.rclone_binary(),
        "--config",
        str(config),
        "copy",
        "--transfers",
        str(transfers),
        "--checkers",
        str(transfers),
        f"src:{bc.SOURCE_BUCKET}",
        f"dst:{bucket}",
    ]


def timed_leg(
    args: list[str], env: dict[str, str], servers: Sequence[SeaweedServer]
) -> dict[str, float]:
    pids = [s.process.pid for s in servers if s.process is not None]
    before = [proc_cpu_seconds(pid) for pid in pids]
    meter = MachineMeter()
    load = os.getloadavg()[0]
    wall, cpu = bc.timed_command(args, env)
    busy = meter.busy_cores()
    after = [proc_cpu_seconds(pid) for pid in pids]
    src_cpu, dst_cpu = (a - b for a, b in zip(after, before, strict=True))
    return {
        "seconds": wall,
        "tool_cpu": cpu,
        "source_cpu": src_cpu,
        "target_cpu": dst_cpu,
        "busy_cores": busy,
        "load_1m": load,
    }


class Session:
    """The two servers, the seeded source and the target that restarts every round."""

    def __init__(self, work: Path, objects: int) -> None:
        self.work = work
        self.src = SeaweedServer(work / "source").start()
        self.dst: SeaweedServer | None = None
        self.src_client = bc.make_client(self.src)
        bc.make_versioned_bucket(self.src_client, bc.SOURCE_BUCKET)
        self.seeded = bc.seed_objects(self.src_client, bc.SOURCE_BUCKET, objects)
        self.generation = 0

    def fresh_target(self) -> SeaweedServer:
        if self.dst is not None:
            self.dst.stop()
        self.generation += 1
        self.dst = SeaweedServer(self.work / f"target-{self.generation}").start()
        bench = bc.Bench(
            self.src, self.dst, self.src_client, bc.make_client(self.dst), self.seeded, self.work, 0
        )
        self.bench = bench
        bc.write_rclone_config(bench)
        return self.dst

    def close(self) -> None:
        for server in (self.dst, self.src):
            if server is not None:
                server.stop()


def run_legs(
    session: Session, variants: list[Variant], levels: list[int], rounds: int, log: Any = sys.stderr
) -> list[Leg]:
    legs: list[Leg] = []
    tools = ["rclone", *(v.name for v in variants)]
    by_name = {v.name: v for v in variants}
    for k in range(1, rounds + 1):
        dst = session.fresh_target()
        order = tools if k % 2 else tools[::-1]
        for c in levels:
            for tool in order:
                bucket = f"{tool}-{c}-{k}".lower().replace("_", "-")
                bc.make_versioned_bucket(session.bench.dst_client, bucket)
                if tool == "rclone":
                    cmd, env = (
                        rclone_command(session.work / "rclone.conf", bucket, c),
                        bc.rclone_env(),
                    )
                else:
                    cmd, env = mirrorline_command(
                        by_name[tool], (session.src, dst), bucket, c, session.work
                    )
                figures = timed_leg(cmd, env, (session.src, dst))
                bc.verify_target(session.bench, bucket)
                leg = Leg(tool, c, k, objects=len(session.seeded), **figures)
                legs.append(leg)
                print(
                    f"  round {k} c={c:<3} {tool:<12} {leg.obj_per_s:7.0f} obj/s "
                    f"{leg.seconds:6.2f} s  tool {1000 * leg.tool_cpu / leg.objects:5.2f} ms/obj  "
                    f"busy {leg.busy_cores:4.2f}  load {leg.load_1m:4.1f}  (verified)",
                    file=log,
                    flush=True,
                )
    return legs


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def summarize(legs: list[Leg], variants: list[Variant], levels: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {"levels": {}}
    for c in levels:
        level: dict[str, Any] = {}
        rclone = {leg.round: leg for leg in legs if leg.tool == "rclone" and leg.concurrency == c}
        for tool in ["rclone", *(v.name for v in variants)]:
            mine = [leg for leg in legs if leg.tool == tool and leg.concurrency == c]
            entry: dict[str, Any] = {
                "median_obj_per_s": _median([leg.obj_per_s for leg in mine]),
                "median_tool_cpu_ms_per_obj": _median(
                    [1000 * leg.tool_cpu / leg.objects for leg in mine]
                ),
                "median_total_cpu_ms_per_obj": _median(
                    [
                        1000 * (leg.tool_cpu + leg.source_cpu + leg.target_cpu) / leg.objects
                        for leg in mine
                    ]
                ),
                "median_busy_cores": _median([leg.busy_cores for leg in mine]),
            }
            if tool != "rclone":
                pairs = [(leg, rclone[leg.round]) for leg in mine if leg.round in rclone]
                ratios = [a.obj_per_s / b.obj_per_s for a, b in pairs]
                cpu = [a.tool_cpu / b.tool_cpu for a, b in pairs if b.tool_cpu]
                entry["ratio_per_round"] = [round(x, 3) for x in ratios]
                entry["ratio_median"] = _median(ratios)
                entry["cpu_ratio_median"] = _median(cpu)
            level[tool] = entry
        out["levels"][str(c)] = level
    out["load_1m"] = [round(leg.load_1m, 2) for leg in legs]
    out["legs"] = [{**asdict(leg), "obj_per_s": round(leg.obj_per_s, 1)} for leg in legs]
    return out


def print_table(summary: dict[str, Any], objects: int) -> None:
    print(f"\nsmall objects: {objects} x 4 KiB, equal concurrency, medians of interleaved rounds")
    print(
        f"{'conc':>4} {'tool':<12} {'obj/s':>7} {'x rclone':>9} {'tool ms/obj':>12} "
        f"{'CPU x rclone':>13} {'all ms/obj':>11} {'busy cores':>11}"
    )
    for c, level in summary["levels"].items():
        for tool, e in level.items():
            ratio = f"{e['ratio_median']:.2f}" if e.get("ratio_median") else "-"
            cpu = f"{e['cpu_ratio_median']:.2f}" if e.get("cpu_ratio_median") else "-"
            print(
                f"{c:>4} {tool:<12} {e['median_obj_per_s']:>7.0f} {ratio:>9} "
                f"{e['median_tool_cpu_ms_per_obj']:>12.3f} {cpu:>13} "
                f"{e['median_total_cpu_ms_per_obj']:>11.3f} {e['median_busy_cores']:>11.2f}"
            )
    loads = summary["load_1m"]
    print(f"load average (1 min) at leg starts: {min(loads):.1f}-{max(loads):.1f}")


def measure(
    objects: int, rounds: int, levels: list[int], variants: list[Variant]
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-small-") as tmp:
        session = Session(Path(tmp), objects)
        try:
            legs = run_legs(session, variants, levels, rounds)
        finally:
            session.close()
    summary = summarize(legs, variants, levels)
    summary.update(bench="small", objects=objects, rounds=rounds, ok=True)
    return summary


def run(quick: bool) -> dict[str, Any]:
    """For `python -m bench`: 3,000 objects x 3 rounds (quick) or 5,000 x 5, at 16 and 32."""
    summary = measure(3000 if quick else 5000, 3 if quick else 5, [16, 32], [Variant("mirrorline")])
    print_table(summary, summary["objects"])
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", default="16,32", help="comma-separated levels")
    parser.add_argument("--variant", action="append", default=[], type=parse_variant)
    parser.add_argument("--no-default", action="store_true", help="only the --variant builds")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    variants = ([] if args.no_default else [Variant("mirrorline")]) + args.variant
    levels = [int(x) for x in args.concurrency.split(",")]
    started = time.time()
    try:
        summary = measure(args.objects, args.rounds, levels, variants)
    except (bc.BenchFailure, OSError) as exc:
        print(f"small: FAILED: {exc}", file=sys.stderr)
        return 1
    summary["elapsed_s"] = round(time.time() - started, 1)
    print_table(summary, args.objects)
    line = json.dumps(summary)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
