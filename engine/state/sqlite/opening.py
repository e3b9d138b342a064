"""Before the state database is opened for writing: is the file there one we may use?

Every way the file can be wrong (a directory, read-only, not SQLite, truncated,
damaged, another application's database, one from a newer mirrorline, locked by
someone else) becomes one `StateFileError` naming the file and what is wrong. The
checks read only: the header with plain file I/O, then the schema's identity through
a read-only connection (it sees a write-ahead log a crash left behind, and cannot
checkpoint it into the file). Only a database that passes is opened for writing,
so a foreign or newer file is never migrated nor stamped.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from engine.errors import StateFileError
from engine.state.sqlite.migrations import APPLICATION_ID, MIGRATIONS, OWN_TABLES

MAGIC = b"SQLite format 3\x00"
HEADER_SIZE = 100
LOCK_WAIT = 5.0  # seconds a command waits for another process's lock before it says who


@dataclass(frozen=True)
class Identity:
    """What a database says it is, read without writing."""

    application_id: int
    user_version: int
    tables: frozenset[str]

    @property
    def empty(self) -> bool:
        return not self.tables and self.application_id == 0 and self.user_version == 0


def check_file(path: Path) -> bool:
    """Raise what is wrong with `path` as a file; True when there is no database yet."""
    try:
        st = path.stat()
    except FileNotFoundError:
        _check_writable_dir(path.parent)
        return True
    except OSError as exc:
        raise StateFileError(f"{path}: cannot be read ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise StateFileError(f"{path} is a directory, not a state database")
    if not stat.S_ISREG(st.st_mode):
        raise StateFileError(f"{path} is not a regular file, so not a state database")
    if not _writable(path, st):
        raise StateFileError(f"{path} is read-only: mirrorline must write its state database")
    _check_writable_dir(path.parent)
    wal = _size(path.with_name(path.name + "-wal"))
    if st.st_size == 0:
        return wal == 0  # created, then the process died before SQLite wrote a page
    try:
        with path.open("rb") as fh:
            header = fh.read(HEADER_SIZE)
    except OSError as exc:
        raise StateFileError(f"{path}: cannot be read ({exc.strerror})") from None
    if header[: len(MAGIC)] != MAGIC:
        if MAGIC.startswith(header):
            raise StateFileError(f"{path} is truncated ({len(header)} bytes, no SQLite header)")
        raise StateFileError(f"{path} is not an SQLite database (damaged, or another kind of file)")
    if len(header) < HEADER_SIZE:
        raise StateFileError(f"{path} is truncated ({len(header)} bytes, half an SQLite header)")
    expected = _expected_size(header)
    if wal == 0 and expected and st.st_size < expected:
        raise StateFileError(f"{path} is truncated ({st.st_size} of its {expected} bytes)")
    return False


def _writable(path: Path, st: os.stat_result) -> bool:
    """Writable, and not marked read-only by its owner (root may write anything: we do not)."""
    return os.access(path, os.W_OK) and bool(st.st_mode & stat.S_IWUSR)


def _check_writable_dir(folder: Path) -> None:
    try:
        st = folder.stat()
    except OSError:
        return  # created later (and an error there names it)
    if not _writable(folder, st):
        raise StateFileError(
            f"{folder} is read-only: the state database needs to write its journal there"
        )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _expected_size(header: bytes) -> int:
    """The file size the header promises (0 when the header does not say: an old writer)."""
    page = int.from_bytes(header[16:18], "big")
    page = 65536 if page == 1 else page
    pages = int.from_bytes(header[28:32], "big")
    valid = header[24:28] == header[92:96]  # the page count is trusted only when current
    return page * pages if valid else 0


async def identify(path: Path, wait: float = LOCK_WAIT) -> Identity:
    """The database's identity, read on a read-only connection in a worker thread.

    With no write-ahead log beside it the file holds everything, and is read as
    `immutable` (no lock, no -shm index created); a log left by a crash or kept
    by a running engine is read through, which may create SQLite's -shm index
    (scratch memory, never data) but never merges the log into the file."""
    return await asyncio.to_thread(_identify, path, wait)


def _identify(path: Path, wait: float) -> Identity:
    mode = "ro" if _size(path.with_name(path.name + "-wal")) else "ro&immutable=1"
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode={mode}", uri=True, timeout=wait)
    except sqlite3.Error as exc:
        raise explain(path, exc) from None
    try:
        app = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        names = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    except sqlite3.Error as exc:
        raise explain(path, exc, wait) from None
    finally:
        conn.close()
    return Identity(int(app), int(version), frozenset(str(n[0]) for n in names))


def check_identity(path: Path, found: Identity) -> None:
    """Ours (or empty, to be made ours) and not newer than this mirrorline, else say why."""
    ours = found.application_id == APPLICATION_ID
    legacy = found.application_id == 0 and found.tables >= OWN_TABLES
    if not (ours or legacy or found.empty):
        tables = ", ".join(sorted(found.tables)[:5]) or "none"
        raise StateFileError(
            f"{path} is not a mirrorline state database (application_id "
            f"{found.application_id:#x}, tables: {tables}); it is left untouched"
        )
    if found.user_version > len(MIGRATIONS):
        raise StateFileError(
            f"{path} was written by a newer mirrorline (schema {found.user_version}, this "
            f"version knows up to {len(MIGRATIONS)}); upgrade mirrorline to use it"
        )


def explain(
    path: Path, exc: sqlite3.Error, waited: float = LOCK_WAIT
) -> StateFileError | sqlite3.Error:
    """An SQLite failure on the state database as what an operator can act on.

    Failures that are not about the file (a bug's bad SQL) come back unchanged."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return StateFileError(f"{path} is locked by {holder(path)}; gave up after {waited:g} s")
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StateFileError(
            f"{path} is damaged ({exc}); move it aside to start afresh, or restore a backup"
        )
    if code == sqlite3.SQLITE_FULL:
        return StateFileError(f"{path}: the disk holding the state database is full")
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM, sqlite3.SQLITE_CANTOPEN):
        return StateFileError(f"{path} cannot be written or opened ({exc})")
    if code == sqlite3.SQLITE_IOERR:
        return StateFileError(f"{path}: the disk failed to read or write ({exc})")
    return exc


def holder(path: Path) -> str:
    """Who holds a lock on the database, as far as this machine tells (Linux /proc/locks)."""
    from engine.state.sqlite.lock import EngineLock

    pids = sorted(_lockers(path) - {os.getpid()})
    engine = EngineLock(path.parent).holder()
    if engine and (not pids or engine in pids):
        return f"the engine running on {path.parent} (pid {engine})"
    if pids:
        return "another process (" + ", ".join(f"pid {p} {_name(p)}" for p in pids[:3]) + ")"
    return "another process"


def _lockers(path: Path) -> set[int]:
    """Pids with a POSIX lock on the database or its shared-memory file."""
    inodes = set()
    for file in (path, path.with_name(path.name + "-shm")):
        try:
            st = file.stat()
        except OSError:
            continue
        inodes.add((os.major(st.st_dev), os.minor(st.st_dev), st.st_ino))
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return set()
    found = set()
    for line in lines:
        fields = line.split()
        if "->" in fields:  # a waiter, not a holder
            continue
        try:
            pid, where = int(fields[4]), fields[5].split(":")
            ident = (int(where[0], 16), int(where[1], 16), int(where[2]))
        except (IndexError, ValueError):
            continue
        if ident in inodes:
            found.add(pid)
    return found


def _name(pid: int) -> str:
    """The process's command name, never its arguments (they may carry a secret)."""
    try:
        return "(" + Path(f"/proc/{pid}/comm").read_text().strip() + ")"
    except OSError:
        return ""
