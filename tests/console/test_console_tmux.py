"""Smoke test: the real `mirrorline tui` in a terminal (tmux), driven by keys and read from
the screen as an operator sees it."""

from __future__ import annotations

import os
import shlex
import sqlite3
import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import MIRRORLINE, Pair, eventually


class Tmux:
    def __init__(self, name: str) -> None:
        self.base = ["tmux", "-L", name, "-f", "/dev/null"]
        self.session = name

    def run(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            [*self.base, *args], capture_output=True, text=True, timeout=30, check=check
        )
        return result.stdout

    def start(self, command: list[str], env: dict[str, str]) -> None:
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        line = f"env -u COLUMNS -u LINES {exports} {shlex.join(command)}; echo EXITED $?; sleep 60"
        # No client ever attaches, so the window takes default-size: set it first.
        self.run(
            "start-server",
            ";",
            "set-option",
            "-g",
            "default-size",
            "120x36",
            ";",
            "new-session",
            "-d",
            "-s",
            self.session,
            "-x",
            "120",
            "-y",
            "36",
            line,
        )

    def screen(self) -> str:
        return self.run("capture-pane", "-t", self.session, "-p")

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, *keys)

    def kill(self) -> None:
        self.run("kill-server", check=False)


@pytest.fixture
def tmux(pair: Pair) -> Iterator[Tmux]:
    session = Tmux(f"ml-{os.getpid()}-{pair.src_bucket}")
    try:
        yield session
    finally:
        session.kill()


def test_tui_in_a_terminal(pair: Pair, tmux: Tmux) -> None:
    pair.add_policy()
    pair.seed("t/", 20, 512)
    tmux.start(
        [*MIRRORLINE, "--state-dir", str(pair.state_dir), "tui", "--refresh", "0.5"],
        {"TERM": "xterm-256color", "PATH": os.environ["PATH"]},
    )
    screen = eventually(
        lambda: "p1" in tmux.screen() and "Policies" in tmux.screen() and tmux.screen(), 60
    )
    assert "mirrorline" in screen and "q Quit" in screen
    eventually(lambda: len(pair.target_latest()) == 20, 60)
    eventually(lambda: "p1" in tmux.screen() and "In flight (0)" in tmux.screen(), 30)

    tmux.keys("F")
    eventually(lambda: "Failures by cause ·" in tmux.screen(), 20)
    tmux.keys("Escape")
    eventually(lambda: "In flight" in tmux.screen(), 20)
    tmux.keys("P")
    eventually(lambda: "PAUSED" in tmux.screen(), 20)
    tmux.keys("q")
    eventually(lambda: "EXITED 0" in tmux.screen(), 60)
    with sqlite3.connect(pair.state_dir / "mirrorline.db") as db:
        assert db.execute("SELECT COUNT(*) FROM tasks WHERE state = 'in-flight'").fetchone() == (0,)
        assert db.execute("SELECT value FROM settings WHERE name = 'paused'").fetchone() == ("1",)


def test_tui_attaches_to_the_engine_already_running(pair: Pair, tmux: Tmux) -> None:
    """`run --listen` leaves its address; `tui` on that state dir attaches instead of failing
    with "another engine is already running", and its actions reach that engine."""
    pair.add_policy()
    engine = pair.start_engine("--listen", "127.0.0.1:0")
    eventually(lambda: (pair.state_dir / "engine.json").exists(), 60)
    tmux.start(
        [*MIRRORLINE, "--state-dir", str(pair.state_dir), "tui", "--refresh", "0.5"],
        {"TERM": "xterm-256color", "PATH": os.environ["PATH"]},
    )
    eventually(lambda: "attached to the engine at http://127.0.0.1:" in tmux.screen(), 60)
    pair.seed("a/", 5, 256)
    eventually(lambda: len(pair.target_latest()) == 5, 60)  # the running engine copies
    tmux.keys("P")  # an action through the API, not the database
    eventually(lambda: "PAUSED" in tmux.screen(), 20)
    tmux.keys("q")
    eventually(lambda: "EXITED 0" in tmux.screen(), 60)
    assert engine.poll() is None, "quitting an attached console leaves the engine running"
    assert pair.status()["state"] == "paused"


def test_tui_is_read_only_beside_an_engine_without_listen(pair: Pair, tmux: Tmux) -> None:
    pair.add_policy()
    pair.start_engine()
    eventually(lambda: pair.status()["scans"] > 0, 60)  # its snapshot is published
    tmux.start(
        [*MIRRORLINE, "--state-dir", str(pair.state_dir), "tui", "--refresh", "0.5"],
        {"TERM": "xterm-256color", "PATH": os.environ["PATH"]},
    )
    screen = eventually(
        lambda: "runs without --listen: read-only" in tmux.screen() and tmux.screen(), 60
    )
    assert "p1" in screen and "another engine" not in screen
    tmux.keys("q")
    eventually(lambda: "EXITED 0" in tmux.screen(), 60)
