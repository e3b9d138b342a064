"""The bad-state catalogue: every way a state file can be wrong, against the real CLI.

Each case builds a state dir with one thing wrong (the database, aliases.json, the
engine lock, the token file, the state dir itself), runs the CLI as a subprocess and
asserts the four promises: one `mirrorline: error:` line naming the file and what is
wrong, exit status 1, done within a deadline (a hang is for ever; the deadline
allows a 5x slower machine), and every file in the state dir byte-for-byte as it was.
No S3 server is needed: none of these commands gets as far as an endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine.policy import OPERATIONS, Policy
from engine.state import open_state
from tests.conftest import MIRRORLINE, eventually

DEADLINE = 60.0  # seconds: a CLI start-up is ~1.5 s idle; a hang never ends
DB, ALIASES = "mirrorline.db", "aliases.json"


@dataclass(frozen=True)
class Case:
    """One wrong state dir: how to break it, what to run, what the line must say."""

    name: str
    breaks: Callable[[Path, Path], None]  # (state dir, a good database to copy)
    says: tuple[str, ...]
    file: str = DB  # the file the line must name
    args: tuple[str, ...] = ("replicate", "ls")
    env: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def good_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real state database with a policy and enough rows to span many pages."""
    path = tmp_path_factory.mktemp("good") / DB

    async def build() -> None:
        state = await open_state(path)
        try:
            await state.policies.add(
                Policy("p1", 1, "src", "a", "dst", "b", replicate=frozenset(OPERATIONS))
            )
            for n in range(300):
                await state.audit.record("cli", "test", f"row {n} " + "x" * 200)
        finally:
            await state.close()

    asyncio.run(build())
    with contextlib.closing(sqlite3.connect(path)) as conn:  # all in the file, no log beside it
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for extra in (path.with_name(DB + "-wal"), path.with_name(DB + "-shm")):
        extra.unlink(missing_ok=True)
    return path


def copy_db(state: Path, good: Path) -> Path:
    shutil.copy(good, state / DB)
    return state / DB


def rewrite(path: Path, at: int, data: bytes) -> None:
    with path.open("r+b") as fh:
        fh.seek(at)
        fh.write(data)


def page_of(db: Path, table: str) -> int:
    with contextlib.closing(sqlite3.connect(f"file:{db}?immutable=1", uri=True)) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,))
        return (root.fetchone()[0] - 1) * page_size


def foreign(state: Path, good: Path) -> None:
    with contextlib.closing(sqlite3.connect(state / DB, isolation_level=None)) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT)")
        conn.execute("INSERT INTO photos (path) VALUES ('/a.jpg')")


def foreign_wal(state: Path, good: Path) -> None:
    """Another application's database in WAL mode, schema version 2, its log not yet merged."""
    conn = sqlite3.connect(state / DB, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("PRAGMA user_version=2")
    conn.execute("INSERT INTO notes VALUES ('kept')")
    # Leave the log as a crash would: copy the files while the connection is open.
    for suffix in ("", "-wal"):
        shutil.copy(state / (DB + suffix), state / (DB + suffix + ".keep"))
    conn.close()
    for suffix in ("", "-wal"):
        os.replace(state / (DB + suffix + ".keep"), state / (DB + suffix))


def newer(state: Path, good: Path) -> None:
    with contextlib.closing(sqlite3.connect(copy_db(state, good))) as conn:
        conn.execute("PRAGMA user_version=99")


def truncated(state: Path, good: Path) -> None:
    db = copy_db(state, good)
    os.truncate(db, db.stat().st_size // 2)


def damaged_schema(state: Path, good: Path) -> None:
    rewrite(copy_db(state, good), 100, os.urandom(400))  # page 1 after the header: the schema


def damaged_table(state: Path, good: Path) -> None:
    db = copy_db(state, good)
    rewrite(db, page_of(db, "policies"), b"\xff" * 64)  # the policies table's root page


def read_only_db(state: Path, good: Path) -> None:
    copy_db(state, good).chmod(0o400)


def read_only_dir(state: Path, good: Path) -> None:
    copy_db(state, good)
    state.chmod(0o500)


def aliases(text: str | bytes) -> Callable[[Path, Path], None]:
    def write(state: Path, good: Path) -> None:
        data = text.encode() if isinstance(text, str) else text
        (state / ALIASES).write_bytes(data)

    return write


def entry(**fields: object) -> str:
    base: dict[str, object] = {"name": "a", "url": "http://127.0.0.1:9000"}
    base.update(access_key="AKIAEXAMPLE", secret_key="hunter2-secret")
    base.update(fields)
    return json.dumps({"version": 1, "aliases": {"a": {k: v for k, v in base.items() if v}}})


def read_only_aliases(state: Path, good: Path) -> None:
    copy_db(state, good)
    aliases(entry())(state, good)
    (state / ALIASES).chmod(0o400)


def directory(name: str) -> Callable[[Path, Path], None]:
    def make(state: Path, good: Path) -> None:
        (state / name).mkdir()

    return make


def state_dir_is_a_file(state: Path, good: Path) -> None:
    (state / "home").write_text("not a directory\n")


def short_token(state: Path, good: Path) -> None:
    (state / "api-token").write_text("short\n")


RUN = ("run", "--until-synced", "--no-events")
LISTEN = (*RUN, "--listen", "127.0.0.1:0")
CASES = [
    Case("db-not-sqlite", lambda s, g: (s / DB).write_bytes(os.urandom(8192)), ("not an SQLite",)),
    Case("db-empty-header", lambda s, g: (s / DB).write_bytes(b"SQLite for"), ("truncated",)),
    Case("db-truncated", truncated, ("truncated", "of its")),
    Case("db-damaged-schema", damaged_schema, ("damaged",)),
    Case("db-damaged-table", damaged_table, ("damaged",)),
    Case("db-foreign", foreign, ("not a mirrorline state database", "photos")),
    Case("db-foreign-wal", foreign_wal, ("not a mirrorline state database", "notes")),
    Case("db-newer-schema", newer, ("newer mirrorline", "schema 99")),
    Case("db-directory", directory(DB), ("is a directory",)),
    Case("db-read-only", read_only_db, ("read-only",)),
    Case("dir-read-only", read_only_dir, ("read-only", "journal"), "state"),
    Case("aliases-not-json", aliases('{"aliases": {'), ("not valid JSON", "line 1"), ALIASES),
    Case("aliases-a-list", aliases("[]"), ("expected an object", "a list"), ALIASES),
    Case("aliases-list-of-aliases", aliases('{"aliases": []}'), ('"aliases" must be',), ALIASES),
    Case("aliases-entry-a-string", aliases('{"aliases": {"a": "x"}}'), ("an object",), ALIASES),
    Case("aliases-url-a-number", aliases(entry(url=5)), ("url must be a string",), ALIASES),
    Case("aliases-bad-url", aliases(entry(url="ftp://x")), ("url is not an http(s)",), ALIASES),
    Case("aliases-no-secret", aliases(entry(secret_key="")), ("missing secret_key",), ALIASES),
    Case("aliases-insecure-text", aliases(entry(insecure="yes")), ("true or false",), ALIASES),
    Case("aliases-unknown-field", aliases(entry(colour="red")), ("unknown field",), ALIASES),
    Case("aliases-newer", aliases('{"version": 7, "aliases": {}}'), ("newer",), ALIASES),
    Case("aliases-not-utf8", aliases(b'{"aliases": {"\xff": 1}}'), ("not UTF-8",), ALIASES),
    Case("aliases-directory", directory(ALIASES), ("is a directory",), ALIASES),
    Case("aliases-read-only", read_only_aliases, ("read-only",), ALIASES, ("alias", "rm", "a")),
    Case(
        "state-dir-a-file",
        state_dir_is_a_file,
        ("is a file, not a state directory",),
        "home",
        env={"MIRRORLINE_HOME": "{state}/home"},
    ),
    Case("lock-directory", directory("engine.lock"), ("cannot be opened",), "engine.lock", RUN),
    Case("token-directory", directory("api-token"), ("token file",), "api-token", LISTEN),
    Case("token-too-short", short_token, ("at least 16",), "api-token", LISTEN),
]


def fingerprint(state: Path) -> dict[str, str]:
    """Every file under the state dir by its hash (directories as such).

    Not SQLite's `-shm`: scratch memory any reader of a logged database may create,
    rebuilt from the log, never data (`docs/reliability-state.md`)."""
    found = {}
    for path in sorted(p for p in state.rglob("*") if not p.name.endswith("-shm")):
        name = str(path.relative_to(state))
        found[name] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def run_cli(state: Path, args: tuple[str, ...], env: dict[str, str]) -> tuple[str, int, float]:
    """The CLI on `state`; its stderr, exit status and seconds taken."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MIRRORLINE_")}
    environ.update({k: v.format(state=state) for k, v in env.items()})
    command = [*MIRRORLINE, *args] if env else [*MIRRORLINE, "--state-dir", str(state), *args]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=DEADLINE, env=environ
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(args)} hung for {DEADLINE:g} s")
    return done.stdout + done.stderr, done.returncode, time.monotonic() - started


def assert_one_line(stderr: str, code: int, *says: str) -> str:
    """`stderr` (all the command wrote): exactly one error line saying `says`, and exit 1."""
    assert "Traceback" not in stderr, stderr
    assert code == 1, (code, stderr)
    line = stderr.strip()
    assert line.startswith("mirrorline: error: "), stderr
    assert "\n" not in line, stderr
    for fragment in says:
        assert fragment.lower() in line.lower(), (fragment, line)
    assert "hunter2" not in line  # the secret in a broken aliases file is never quoted
    return line


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    yield folder
    folder.chmod(0o700)  # the read-only cases: let pytest clean up


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_broken_state_file_is_one_line_and_left_as_it_was(
    case: Case, state: Path, good_db: Path
) -> None:
    case.breaks(state, good_db)
    before = fingerprint(state)
    stderr, code, _ = run_cli(state, case.args, case.env)
    line = assert_one_line(stderr, code, *case.says)
    named = state if case.file == "state" else state / case.file
    assert f"{named} " in line or f"{named}:" in line, line  # the line names the file
    assert fingerprint(state) == before


def hold(script: str, state: Path) -> subprocess.Popen[str]:
    """A helper process that takes a lock, says "held", and keeps it until killed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(state)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


LOCK_DB = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1] + "/mirrorline.db", isolation_level=None)
conn.execute("PRAGMA locking_mode=EXCLUSIVE")
conn.execute("BEGIN EXCLUSIVE")
print("held", flush=True)
time.sleep(600)
"""

LOCK_ENGINE = """
import fcntl, os, sys, time
fh = open(sys.argv[1] + "/engine.lock", "a+")
fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
fh.write(str(os.getpid())); fh.flush()
print("held", flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize(
    ("script", "args", "says"),
    [
        (LOCK_DB, ("replicate", "ls"), ("is locked by another process", "gave up after 5 s")),
        (LOCK_ENGINE, RUN, ("another engine", "is already running")),
    ],
    ids=["db-locked", "engine-running"],
)
def test_a_lock_held_elsewhere_waits_a_bounded_time_and_names_the_holder(
    script: str, args: tuple[str, ...], says: tuple[str, ...], state: Path, good_db: Path
) -> None:
    copy_db(state, good_db)
    holder = hold(script, state)
    try:
        before = fingerprint(state)
        stderr, code, _ = run_cli(state, args, {})
        line = assert_one_line(stderr, code, *says)
        assert f"pid {holder.pid}" in line, line
        assert fingerprint(state) == before
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_a_database_a_crash_left_in_its_log_still_opens(state: Path) -> None:
    """The identity check reads through the write-ahead log: a database killed before its
    first checkpoint (the header in the file still blank) is ours, not "foreign"."""
    script = (
        "import asyncio, os, sys\n"
        "from engine.state import open_state\n"
        "async def go():\n"
        "    s = await open_state(sys.argv[1] + '/mirrorline.db')\n"
        "    await s.audit.record('cli', 'before-crash', '')\n"
        "    os.kill(os.getpid(), 9)\n"
        "asyncio.run(go())\n"
    )
    subprocess.run([sys.executable, "-c", script, str(state)], timeout=DEADLINE)
    assert eventually(lambda: (state / (DB + "-wal")).stat().st_size > 0, timeout=5)
    stderr, code, _ = run_cli(state, ("replicate", "ls"), {})
    assert code == 0, stderr
    with sqlite3.connect(state / DB) as conn:
        assert conn.execute("SELECT action FROM audit").fetchall() == [("before-crash",)]
