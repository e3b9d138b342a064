"""A read-only command starts without the copy path: no HTTP data path, no minio SDK, no console.

Start-up is almost all imports (`bench/cli_start.py` times it): aiohttp and the
minio SDK (with its Crypto) took 0.7 s of a 1.1 s `replicate status`. Each command
here runs as the real CLI in a fresh interpreter, on a state dir with a policy and
two aliases, and reports what it loaded as it exits. Timing is left to the bench:
a wall-clock bound would fail on a loaded machine, a module list does not.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from engine.aliases import Alias, AliasBook
from engine.policy import Policy
from engine.state import open_state

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("aiohttp", "httptools", "minio", "textual")  # httptools: the data path's parser
MARK = "loaded:"
# Runs `mirrorline ARGS...` as the console script does, and names the heavy
# packages in sys.modules when the interpreter exits (after click's sys.exit).
RUNNER = f"""
import atexit, sys
atexit.register(lambda: print({MARK!r} + ",".join(m for m in {HEAVY!r} if m in sys.modules),
                              file=sys.__stderr__))
sys.argv = ["mirrorline", *sys.argv[1:]]
from engine.cli.main import main
main()
"""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


READ_ONLY = [
    (["replicate", "status", "--json"], 0),
    (["replicate", "backlog", "src/bucket-a"], 0),
    (["replicate", "ls"], 0),
    (["replicate", "resync", "status", "src/bucket-a", "--json"], 0),
    (["alias", "ls"], 0),
    # nobody listens there: the remote client loads, then fails in one line (status 2,
    # as any check that could not run)
    (["replicate", "explain", "src/bucket-a/key", "--connect", "http://127.0.0.1:{port}"], 2),
]


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("cli-imports")
    book = AliasBook(where / "aliases.json")
    for name in ("src", "dst"):
        book.set(Alias(name, "http://127.0.0.1:1", "AKIAEXAMPLE", "secret-example"))

    async def seed() -> None:
        state = await open_state(where / "mirrorline.db")
        await state.policies.add(Policy("p1", 1, "src", "bucket-a", "dst", "bucket-b"))
        await state.close()

    asyncio.run(seed())
    return where


def run_cli(state_dir: Path, args: list[str]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    argv = [sys.executable, "-c", RUNNER, "--state-dir", str(state_dir), *args]
    env = os.environ | {"MIRRORLINE_TOKEN": "token-example"}  # for --connect
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    marks = [line for line in done.stderr.splitlines() if line.startswith(MARK)]
    assert len(marks) == 1, done.stderr
    return done, [m for m in marks[0].removeprefix(MARK).split(",") if m]


@pytest.mark.parametrize(("args", "code"), READ_ONLY, ids=[" ".join(a) for a, _ in READ_ONLY])
def test_a_read_only_command_loads_no_copy_path(
    state_dir: Path, args: list[str], code: int
) -> None:
    args = [a.format(port=closed_port()) for a in args]
    done, loaded = run_cli(state_dir, args)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    if code:
        assert "cannot reach the engine" in done.stderr, done.stderr
    assert loaded == [], f"`mirrorline {' '.join(args)}` loads {loaded}"


def test_the_runner_sees_what_a_command_loads(state_dir: Path) -> None:
    """`diff` reaches the stores (aliases on a closed port): it loads the data path, and says so."""
    done, loaded = run_cli(state_dir, ["replicate", "diff", "src/bucket-a"])
    assert done.returncode != 0, done.stdout
    assert "httptools" in loaded, done.stderr
