"""What the catalogue's refusals protect, shown working: secrets off argv, one bucket under
two names, keys a server lists but will not serve, text from stores shown escaped."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import pty
import re
import select
import stat
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from engine.demo.seaweed import SeaweedServer
from engine.model import Op, Outcome, Task, TaskState
from engine.policy import Policy
from engine.replication.transfer import TransferContext, execute
from engine.s3.client import NS, S3Client, _decoder
from tests.conftest import MIRRORLINE, Pair, eventually, new_pair

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@pytest.fixture(scope="module")
def shared(
    servers: tuple[SeaweedServer, SeaweedServer], tmp_path_factory: pytest.TempPathFactory
) -> Pair:
    """One configured pair for the tests that need no engine (each uses its own names)."""
    root = tmp_path_factory.mktemp("guards")
    return new_pair(servers, "guards-src", "guards-dst", root / "state")


def aliases(pair: Pair) -> dict[str, dict[str, object]]:
    return json.loads((pair.state_dir / "aliases.json").read_text())["aliases"]


# -- secrets -------------------------------------------------------------------------------


def test_alias_set_reads_keys_from_stdin_and_warns_for_a_secret_on_argv(shared: Pair) -> None:
    s = shared.source
    base = [*MIRRORLINE, "--state-dir", str(shared.state_dir), "alias", "set"]
    piped = subprocess.run(
        [*base, "piped", s.endpoint, "--stdin"],
        input=f"{s.access_key}\n{s.secret_key}\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (piped.returncode, piped.stderr) == (0, ""), piped.stderr
    assert aliases(shared)["piped"]["secret_key"] == s.secret_key
    typed = shared.ml("alias", "set", "typed", s.endpoint, s.access_key, s.secret_key)
    (warning,) = typed.stderr.strip().splitlines()
    assert warning.startswith("mirrorline: warning: a secret key on the command line")
    assert s.secret_key not in typed.stderr
    assert aliases(shared)["typed"]["secret_key"] == s.secret_key


def _read_until(fd: int, marker: bytes, seen: bytearray, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} on the terminal within {seconds}s: {bytes(seen)!r}"
        if select.select([fd], [], [], left)[0]:
            try:
                seen += os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                return


def test_alias_set_asks_on_a_terminal_without_echo(shared: Pair) -> None:
    s = shared.source
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*MIRRORLINE, "--state-dir", str(shared.state_dir), "alias", "set", "asked", s.endpoint],
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    seen = bytearray()
    try:
        _read_until(master, b"Enter Access Key", seen)
        os.write(master, s.access_key.encode() + b"\n")
        _read_until(master, b"Enter Secret Key", seen)
        os.write(master, s.secret_key.encode() + b"\n")
        assert proc.wait(60) == 0
        _read_until(master, b"", seen, 1)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    assert proc.stdout is not None and b"Added `asked`" in proc.stdout.read()
    assert s.secret_key.encode() not in seen  # hidden input: never echoed to the terminal
    assert aliases(shared)["asked"]["secret_key"] == s.secret_key


def test_exports_and_the_console_log_are_private(tmp_path: Path) -> None:
    from tui.command import log_to_file
    from tui.screens.failures import write_export

    rows = [{"id": 1, "key": '=HYPERLINK("http://x","y")', "last_error": "-2+3", "size": 5}]
    write_export(tmp_path / "failures", rows)
    for name in ("failures.csv", "failures.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    (row,) = csv.DictReader(io.StringIO((tmp_path / "failures.csv").read_text()))
    assert (row["key"], row["last_error"], row["size"]) == (
        '\'=HYPERLINK("http://x","y")',
        "'-2+3",
        "5",
    )
    assert json.loads((tmp_path / "failures.json").read_text()) == rows  # JSON stays exact

    log = tmp_path / "console.log"
    log.write_text("older lines\n")
    log.chmod(0o644)  # as an older version left it
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        log_to_file(log)
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


# -- one bucket, two names -----------------------------------------------------------------


async def test_the_loop_guard_knows_the_target_under_another_spelling(shared: Pair) -> None:
    """A policy from one bucket onto itself (127.0.0.1 and localhost): the first copy makes a
    replica in that bucket; the loop guard must refuse to copy that replica again."""
    s, bucket = shared.source, shared.src_bucket
    client = S3Client(s.endpoint, s.access_key, s.secret_key)
    port = s.endpoint.rsplit(":", 1)[1]
    policy = Policy("loop", 1, "src", bucket, "srclocal", bucket)
    ctx = TransferContext(
        policy, client, client, f"127.0.0.1:{port}/{bucket}", f"localhost:{port}/{bucket}"
    )
    original = shared.put("loop/round.txt", b"round and round")

    def task(version: str, n: int) -> Task:
        return Task(
            id=n,
            policy="loop",
            key="loop/round.txt",
            version_id=version,
            op=Op.PUT,
            state=TaskState.IN_FLIGHT,
            size=15,
            etag="",
            src_mtime=time.time(),
            seq=n,
        )

    try:
        first = await execute(task(original, 1), ctx)
        assert first.outcome is Outcome.REPLICATED and first.target_version != original
        again = await execute(task(first.target_version or "", 2), ctx)
    finally:
        await client.close()
    assert (again.outcome, again.note) == (Outcome.SKIPPED, "replica of target")
    versions = shared.src.list_objects(bucket, prefix="loop/round.txt", include_version=True)
    assert len(list(versions)) == 2  # the original and one replica, not a growing chain


# -- keys a store lists but will not serve -------------------------------------------------


def test_listing_keys_are_decoded_only_when_the_server_encoded_them() -> None:
    encoded = ET.fromstring(f'<R xmlns="{NS[1:-1]}"><EncodingType>url</EncodingType></R>')
    plain = ET.fromstring(f'<R xmlns="{NS[1:-1]}"></R>')
    assert _decoder(encoded)("a%2Bb+c%1B%0A") == "a+b c\x1b\n"
    assert _decoder(plain)("a%2Bb+c") == "a%2Bb+c"  # literal: SeaweedFS ignores the request


def test_a_key_listed_but_not_served_is_a_permanent_failure_with_its_reason(pair: Pair) -> None:
    """SeaweedFS lists `\\x01` as U+FFFD and answers 404 for that name: a failure in the
    backlog, once, and the next scans neither skip it nor queue it again."""
    pair.add_policy()
    pair.put("fine.txt", b"fine")
    pair.put("ctl\x01key", b"unlistable")
    engine = pair.start_engine()
    # The two copies race: the failure can be recorded before fine.txt's copy lands.
    eventually(lambda: (row := pair.status())["failed"] == 1 and row["replicated"] == 1, 60)
    assert pair.target_latest() == {"fine.txt": b"fine"}
    pair.scans_after("p1", 2)
    row = pair.status()
    assert (row["failed"], row["skipped"], row["pending"]) == (1, 0, 0)
    backlog = pair.ml("replicate", "backlog", f"src/{pair.src_bucket}", "--failed")
    (line,) = [ln for ln in backlog.stdout.splitlines() if "ctl" in ln]
    assert "will not serve it" in line and "failed" in line
    assert pair.stop_engine(engine) == 0


def test_diff_shows_keys_with_control_characters_escaped_one_per_line(shared: Pair) -> None:
    shared.add_policy("--prefix", "diff/")
    for key in ("diff/line\nbreak", "diff/tab\there", "diff/plain"):
        shared.put(key, b"x")
    result = shared.ml("replicate", "diff", f"src/{shared.src_bucket}", check=False)
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and not CONTROL.search(result.stdout), result.stdout
    assert any("line\\x0abreak" in ln for ln in lines) and any("tab\\x09here" in ln for ln in lines)
