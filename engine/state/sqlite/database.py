"""The state database: one SQLite file in WAL mode, opened through aiosqlite.

It holds policies, the task queue, counters, totals and the replica map, so a
state change and the numbers that describe it commit in one transaction.
Counters are kept by triggers: reading a backlog costs O(1), and no code path
can change a task's state without the counters following.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from engine.errors import StateError, StateFileError
from engine.shielded import shielded
from engine.state.sqlite.migrations import APPLICATION_ID, MIGRATIONS
from engine.state.sqlite.opening import LOCK_WAIT, check_file, check_identity, explain, identify


class Database:
    """One connection, shared by the engine's coroutines; writes take turns.

    aiosqlite runs statements one at a time on its own thread, but a transaction
    spans several awaits: without the lock, a second coroutine's statement would
    land inside the first one's transaction.

    A failure that is about the file (locked past the wait, damaged, disk full) comes
    out as the StateFileError that names it, not as SQLite's bare words.
    """

    def __init__(self, conn: aiosqlite.Connection, path: Path, wait: float = LOCK_WAIT) -> None:
        self.conn = conn
        self.path = path
        self._wait = wait
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            try:
                await self.conn.execute("BEGIN IMMEDIATE")
                yield self.conn
                await self.conn.execute("COMMIT")  # a failed COMMIT leaves it open: roll back
            except BaseException as exc:
                # Cancelled even while BEGIN waits its turn on aiosqlite's thread, the
                # BEGIN still runs: a ROLLBACK queued after it always undoes it, so no
                # transaction is left open for the next one to trip over.
                await shielded(self._rollback())
                if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
                    raise StateError(f"state database {self.path}: the disk is full") from exc
                raise

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[aiosqlite.Connection]:
        try:
            async with self._tx() as conn:
                yield conn
        except sqlite3.DatabaseError as exc:
            raise self._explained(exc) from None

    def _explained(self, exc: sqlite3.Error) -> BaseException:
        return explain(self.path, exc, self._wait)

    async def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.OperationalError):  # nothing had begun
            await self.conn.execute("ROLLBACK")

    async def write(self, sql: str, args: Iterable[Any] = ()) -> int:
        """One statement in its own transaction; returns the rows changed."""
        async with self.tx() as conn:
            cur = await conn.execute(sql, tuple(args))
            return cur.rowcount

    async def rows(self, sql: str, args: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        try:
            async with self.conn.execute(sql, tuple(args)) as cur:
                return list(await cur.fetchall())
        except sqlite3.DatabaseError as exc:
            raise self._explained(exc) from None

    async def close(self) -> None:
        await self.conn.close()


async def open_db(path: Path | str, wait: float = LOCK_WAIT) -> Database:
    """Open (creating if needed, mode 0600) and migrate the state database.

    The file is checked first (`opening`): anything wrong is one StateFileError and
    nothing written. If the connection fails after it exists, it is closed: its
    thread would otherwise keep the process alive for ever after the error."""
    if str(path) == ":memory:":
        return await _connect(":memory:", ":memory:", wait)
    path = Path(path)
    fresh = check_file(path)
    if not fresh:
        check_identity(path, await identify(path, wait))
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the state dir: private
        if fresh:
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    except OSError as exc:
        raise StateFileError(f"{path}: cannot be created ({exc.strerror})") from None
    return await _connect(str(path), path, wait)


async def _connect(where: str, path: Path | str, wait: float) -> Database:
    try:
        conn = await aiosqlite.connect(where, isolation_level=None, timeout=wait)
    except sqlite3.Error as exc:
        raise explain(Path(path), exc, wait) from None
    try:
        conn.row_factory = aiosqlite.Row
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            f"PRAGMA busy_timeout={int(wait * 1000)}",
            "PRAGMA foreign_keys=ON",
            # 32 MiB of page cache (default 2 MiB): with a million tasks the queue's hot
            # pages (both ends of each index, the counters) stay cached; grown as read.
            "PRAGMA cache_size=-32768",
            "PRAGMA temp_store=MEMORY",
        ):
            await conn.execute(pragma)
        await _migrate(conn)
    except BaseException as exc:
        await conn.close()
        if isinstance(exc, sqlite3.Error):
            raise explain(Path(path), exc, wait) from None
        raise
    return Database(conn, Path(path), wait)


async def _migrate(conn: aiosqlite.Connection) -> None:
    """Apply the migrations this database lacks, stamping it as mirrorline's on the way."""
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    version = row[0] if row else 0
    async with conn.execute("PRAGMA application_id") as cur:
        row = await cur.fetchone()
    stamped = bool(row and row[0] == APPLICATION_ID)
    if stamped and version == len(MIGRATIONS):
        return
    await conn.execute("BEGIN IMMEDIATE")
    try:
        await conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        for number, statements in enumerate(MIGRATIONS[version:], version + 1):
            for sql in statements:
                await conn.execute(sql)
            await conn.execute(f"PRAGMA user_version={number}")
        await conn.execute("COMMIT")
    except BaseException:
        await conn.execute("ROLLBACK")
        raise
