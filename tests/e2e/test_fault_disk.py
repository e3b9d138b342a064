"""The state database's disk fills up while the engine runs, then space comes back.

The state dir is a 32 MiB tmpfs (root may mount one; elsewhere the test says why it
skips). Mid-run a filler file takes every free byte, more objects arrive on the source,
and the engine's next write into its database finds no room. It must either stop with
one clear line and a non-zero status (a supervisor restarts it), or go on without losing
a task; once the filler is gone a restart ends with target == source.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.demo.seaweed import SeaweedServer
from tests.conftest import Pair, eventually, new_pair
from tests.faultkit import IN_PARTS, Plan, progress, seed
from tests.mirror import duplicated, verify_pair

pytestmark = pytest.mark.faults

SIZE = "32m"  # room for the run (a WAL grows to 4 MiB before its checkpoint)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "state"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a {SIZE} tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of `disk` with one file; returns it (delete it to give room)."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as fh:  # unbuffered: nothing left to flush at close
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    return filler


def test_a_full_state_disk_stops_the_engine_cleanly_and_a_restart_ends_correct(
    servers: tuple[SeaweedServer, SeaweedServer], small_disk: Path, tmp_path: Path
) -> None:
    pair = new_pair(servers, "disk-src", "disk-dst", small_disk)
    pair.logs = tmp_path  # logs elsewhere: the full disk must not swallow the one line
    try:
        run_out_of_room(pair, small_disk)
    finally:
        for proc in pair.engines:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def run_out_of_room(pair: Pair, disk: Path) -> None:
    seed(pair.src, pair.src_bucket, Plan(objects=200, multipart=0))
    pair.add_policy()
    engine = pair.start_engine(*IN_PARTS)
    eventually(lambda: (p := progress(pair.state_dir)) and p.landed >= 200, 120, 0.1)
    filler = fill(disk)
    more = Plan(objects=400, multipart=0, seed=12)
    seed(pair.src, pair.src_bucket, more)  # new versions of the 200, and 200 new keys
    try:
        status = engine.wait(60)
    except subprocess.TimeoutExpired:
        status = None
    log = pair.engine_log()
    print(f"disk full: engine {'exited ' + str(status) if status is not None else 'kept running'}")
    print("\n".join(log.splitlines()[-5:]))
    # Either way no loop of the engine died with a traceback while the process ran on.
    assert "Traceback" not in log, log[-3000:]
    if status is not None:
        assert status != 0
        last = log.strip().splitlines()[-1]
        assert "full" in last.lower() and str(pair.state_dir) in last, last
    os.unlink(filler)
    pair.stop_engine(engine)
    final = pair.start_engine("--until-synced", *IN_PARTS)
    assert final.wait(180) == 0, pair.engine_log()[-3000:]
    figures = verify_pair(pair, history=False)  # what a reader sees is exact
    print(f"after space came back: verified {figures}")
    doubled = duplicated(pair)
    assert not doubled, (
        f"after a full state disk a task run again copied a version twice: {doubled}"
    )
    verify_pair(pair)  # every version, in order
