"""The embedded backend: one SQLite database in the state dir, one engine at a time."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from engine.config import ensure
from engine.errors import UserError
from engine.state.sqlite.audit import SQLiteAuditLog
from engine.state.sqlite.database import Database, open_db
from engine.state.sqlite.policies import SQLitePolicyStore
from engine.state.sqlite.queue import SQLiteQueue
from engine.state.sqlite.resyncs import SQLiteResyncStore
from engine.state.sqlite.telemetry import SQLiteTelemetryStore
from engine.state.stores import State


def stores(db: Database, where: str, close_also: EngineLock | None = None) -> State:
    """Every store on one open database."""

    async def close() -> None:
        try:
            await db.close()
        finally:
            if close_also is not None:
                close_also.release()

    return State(
        where=where,
        queue=SQLiteQueue(db),
        policies=SQLitePolicyStore(db),
        resyncs=SQLiteResyncStore(db),
        telemetry=SQLiteTelemetryStore(db),
        audit=SQLiteAuditLog(db),
        _close=close,
    )


async def open_sqlite(path: Path, engine: bool = False) -> State:
    lock = EngineLock(path.parent) if engine else None
    if lock is not None:
        lock.acquire()
    try:
        db = await open_db(path)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return stores(db, str(path), lock)


class EngineLock:
    """One running engine per state dir: a second one would double every copy."""

    def __init__(self, state_dir: Path) -> None:
        self.path = ensure(state_dir) / "engine.lock"
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        fh = open(self.path, "a+")  # noqa: SIM115 - held for the engine's lifetime
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise UserError(f"another engine is already running on {self.path.parent}") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def holder(self) -> int | None:
        """The pid of the engine holding the lock now, or None when none does."""
        try:
            fh = open(self.path)  # noqa: SIM115 - closed below
        except FileNotFoundError:
            return None
        with fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                text = fh.read().strip()
                return int(text) if text.isdigit() else 0
            fcntl.flock(fh, fcntl.LOCK_UN)
            return None

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
