"""`mirrorline demo`: the headless run with faults ends verified, and no store outlives it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import eventually

MIRRORLINE = [sys.executable, "-m", "engine.cli"]
pytestmark = pytest.mark.s3


def weed_pids(root: Path) -> set[int]:
    """`weed` processes whose command line names a directory under `root`."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"weed") and str(root).encode() in b" ".join(cmdline):
            found.add(int(entry.name))
    return found


def demo(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*MIRRORLINE, "--state-dir", str(root), "demo", "--headless", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_headless_demo_with_faults_ends_with_the_target_verified(tmp_path: Path) -> None:
    proc = demo(tmp_path / "demo", "--duration", "30", "--faults", "--rate", "20")
    out, err = proc.communicate(timeout=420)
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    lines = out.splitlines()
    assert "target == source" in lines
    faults = [line for line in lines if "] fault: " in line]
    assert len(faults) == 6, faults  # cut, heal, latency, heal, resets, heal
    (summary,) = [line for line in lines if line.startswith("summary:")]
    assert " 0 failed" in summary, summary  # an outage is retried, never parked
    (verify,) = [line for line in lines if line.startswith("verify:")]
    assert "0 differences" in verify and not verify.startswith("verify: 0 live")
    assert weed_pids(tmp_path) == set()
    assert "Traceback" not in err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_no_store_survives_the_demo(tmp_path: Path, sig: signal.Signals) -> None:
    proc = demo(tmp_path / "demo", "--duration", "600")
    assert proc.stdout is not None
    for line in proc.stdout:  # the stores are up once it says so
        if line.startswith("stores up"):
            break
    stores = eventually(lambda: weed_pids(tmp_path) if len(weed_pids(tmp_path)) == 2 else None)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    eventually(lambda: not any(_alive(pid) for pid in stores), timeout=30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purpose: it holds no port and no data
    state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    return state != "Z"
