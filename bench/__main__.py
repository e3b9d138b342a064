"""`python -m bench [--quick] [--only NAME,...] [--json-out PATH]`: the whole benchmark suite.

Each part is a module with `def run(quick: bool) -> dict` that starts what it
needs itself (two SeaweedFS servers through engine.demo.seaweed, rclone where it
compares against it) and verifies what it timed. Parts owned by other areas are
run when their module exists and skipped with a line saying so when it does not.
The summary table goes to stdout, progress to stderr, everything to the JSON file.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

# name -> (module, what it measures); in the order they run.
PARTS = {
    "small": ("small", "small objects vs rclone at equal concurrency"),
    "lag": ("lag", "replication latency: the engine's figures vs an outside watcher"),
    "large": ("large", "large objects vs rclone, memory"),
    "queue": ("queue_scale", "queue lifecycles to 1M tasks"),
    "queue_pg": ("queue_pg", "PostgreSQL queue"),
    "console": ("console", "console key-to-repaint latency under a 1M backlog"),
}


def machine() -> dict[str, Any]:
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_1m_at_start": round(os.getloadavg()[0], 2),
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }


def headline(name: str, result: dict[str, Any]) -> str:
    """One line per part for the table: the ratios where the part has them."""
    if name == "small" and "levels" in result:
        bits = []
        for level, tools in result["levels"].items():
            m = tools.get("mirrorline", {})
            bits.append(
                f"{level} vs {level}: {m.get('ratio_median')}x rclone obj/s, "
                f"CPU/obj {m.get('cpu_ratio_median')}x"
            )
        return "; ".join(bits)
    if name == "lag" and "modes" in result:
        return "; ".join(
            f"{mode}: outside p50/p99 {m['outside']['p50']}/{m['outside']['p99']} s, "
            f"engine {m['engine']['p50']}/{m['engine']['p99']} s"
            for mode, m in result["modes"].items()
        )
    keys = [k for k in result if any(w in k for w in ("ratio", "per_s", "p99", "rss"))]
    return ", ".join(f"{k}={result[k]}" for k in keys[:4]) or "done"


def run_part(name: str, quick: bool) -> dict[str, Any]:
    module_name, what = PARTS[name]
    if not (HERE / f"{module_name}.py").exists():
        print(f"bench: {name}: skipped (bench/{module_name}.py is not here yet)", file=sys.stderr)
        return {"skipped": f"bench/{module_name}.py missing"}
    print(f"bench: {name}: {what}", file=sys.stderr, flush=True)
    started = time.monotonic()
    try:
        result = importlib.import_module(module_name).run(quick)
    except Exception as exc:  # noqa: BLE001 - one failed part must not lose the others
        traceback.print_exc(file=sys.stderr)
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    result.setdefault("ok", True)
    result["elapsed_s"] = round(time.monotonic() - started, 1)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 3 minutes instead of 10-15")
    parser.add_argument("--only", help=f"comma-separated parts: {','.join(PARTS)}")
    parser.add_argument("--json-out", type=Path, default=Path("bench/results/latest.json"))
    args = parser.parse_args(argv)
    names = args.only.split(",") if args.only else list(PARTS)
    unknown = [n for n in names if n not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {', '.join(unknown)}; known: {', '.join(PARTS)}")
    report: dict[str, Any] = {"machine": machine(), "quick": args.quick, "parts": {}}
    for name in names:
        report["parts"][name] = run_part(name, args.quick)
    report["machine"]["load_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(
        f"\nbenchmark suite ({'quick' if args.quick else 'full'}), {report['machine']['date']}, "
        f"{report['machine']['cpus']} CPUs, load {report['machine']['load_1m_at_start']}"
        f" -> {report['machine']['load_1m_at_end']}"
    )
    print(f"{'part':<9} {'status':<8} {'seconds':>8}  result")
    for name, result in report["parts"].items():
        if "skipped" in result:
            status, line = "skipped", result["skipped"]
        elif not result.get("ok"):
            status, line = "FAILED", result.get("error", "")
        else:
            status, line = "ok", headline(name, result)
        print(f"{name:<9} {status:<8} {result.get('elapsed_s', 0):>8}  {line}")
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"JSON: {args.json_out}")
    failed = [n for n, r in report["parts"].items() if "skipped" not in r and not r.get("ok")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
