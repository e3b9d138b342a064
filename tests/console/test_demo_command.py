"""`mirrorline demo` refuses what it cannot do in one line, before it starts or wipes anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

MIRRORLINE = [sys.executable, "-m", "engine.cli"]


def demo(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MIRRORLINE, "--state-dir", str(root), "demo", *args],
        capture_output=True,  # stdout is a pipe: no terminal
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("args", [["--faults"], ["--duration", "30"]])
def test_scripted_options_without_headless_are_one_line(tmp_path: Path, args: list[str]) -> None:
    result = demo(tmp_path, *args)
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"{args[0]} go with --headless" in result.stderr
    assert not (tmp_path / "stores").exists()  # nothing started


def test_the_console_demo_needs_a_terminal_and_wipes_nothing_without_one(tmp_path: Path) -> None:
    (tmp_path / "mirrorline.db").write_bytes(b"kept")
    result = demo(tmp_path, "--clean")
    assert result.returncode != 0
    assert "the console needs a terminal (use `mirrorline demo --headless`" in result.stderr
    assert result.stderr.count("\n") == 1
    assert (tmp_path / "mirrorline.db").read_bytes() == b"kept"
    assert not (tmp_path / "stores").exists()


def test_help_lists_the_demo_keys(tmp_path: Path) -> None:
    out = demo(tmp_path, "--help").stdout
    for line in ("C  cut the link to the target", "H  heal: every fault off", "A  add an endpoint"):
        assert line in out, line
