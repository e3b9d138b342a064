"""How long a read-only CLI command takes, start to exit: almost all of it is imports.

    python bench/cli_start.py [--runs 10] [--tree /tmp/old-tree]

Runs each command `runs` times as the installed `mirrorline` script (a fresh
interpreter each time, as an operator's shell does) on a fresh state dir with two
aliases and no engine, and prints one JSON line per command: the median wall
time and its spread, and the median CPU time (user + system, which other work on
a shared machine disturbs far less than the wall time), in seconds. `--tree ROOT` puts an older `engine/` package (e.g. from
`git archive`) first on PYTHONPATH, for a before/after on the same machine.
Bytecode is cached (under a temporary PYTHONPYCACHEPREFIX, warmed by the seed
commands) as on an operator's install, even where PYTHONDONTWRITEBYTECODE is set;
`--no-bytecode` times the compile-every-run case instead. The
explain command's `--connect` names a port nobody listens on: it times the
import path of the remote client, then fails to connect (exit status 1).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = Path(sys.executable).with_name("mirrorline")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def commands(port: int) -> dict[str, list[str]]:
    return {
        "status": ["replicate", "status", "--json"],
        "backlog": ["replicate", "backlog", "src/bucket-a"],
        "policies list": ["replicate", "ls"],
        "resync status": ["replicate", "resync", "status", "src/bucket-a", "--json"],
        "explain --connect": [
            "replicate",
            "explain",
            "src/bucket-a/key",
            "--connect",
            f"http://127.0.0.1:{port}",
        ],
        "alias list": ["alias", "ls"],
    }


def seed(state_dir: Path, env: dict[str, str]) -> None:
    for name in ("src", "dst"):
        argv = ["alias", "set", name, "http://127.0.0.1:1", "--stdin", "--no-check"]
        subprocess.run(
            [SCRIPT, "--state-dir", state_dir, *argv],
            input="AKIAEXAMPLE\nsecret-example\n",
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )


def timed(argv: list[str | Path], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, capture_output=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--tree", type=Path, help="an engine tree to time instead of this one")
    parser.add_argument("--no-bytecode", action="store_true", help="compile on every run")
    args = parser.parse_args()
    env = os.environ | {"MIRRORLINE_TOKEN": "token-example"}  # for --connect
    if args.tree:
        env["PYTHONPATH"] = str(args.tree.resolve())
    with tempfile.TemporaryDirectory(prefix="cli-start-") as tmp:
        state_dir = Path(tmp) / "state"
        if args.no_bytecode:
            env["PYTHONDONTWRITEBYTECODE"] = "1"
        else:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        seed(state_dir, env)
        result: dict[str, object] = {
            "tree": str(args.tree or "."),
            "runs": args.runs,
            "bytecode": not args.no_bytecode,
        }
        for label, argv in commands(free_port()).items():
            full: list[str | Path] = [SCRIPT, "--state-dir", state_dir, *argv]
            runs = [timed(full, env) for _ in range(args.runs)]
            walls = sorted(wall for wall, _ in runs)
            result[label] = {
                "median_s": round(statistics.median(walls), 3),
                "min_s": round(walls[0], 3),
                "max_s": round(walls[-1], 3),
                "cpu_median_s": round(statistics.median(cpu for _, cpu in runs), 3),
            }
        result["loadavg"] = os.getloadavg()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
