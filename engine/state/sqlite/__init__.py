"""The embedded backend: one SQLite database in the state dir, one engine at a time."""

from __future__ import annotations

from pathlib import Path

from engine.state.sqlite.audit import SQLiteAuditLog
from engine.state.sqlite.database import Database, open_db
from engine.state.sqlite.lock import EngineLock
from engine.state.sqlite.opening import LOCK_WAIT
from engine.state.sqlite.policies import SQLitePolicyStore
from engine.state.sqlite.queue import SQLiteQueue
from engine.state.sqlite.resyncs import SQLiteResyncStore
from engine.state.sqlite.telemetry import SQLiteTelemetryStore
from engine.state.stores import State

__all__ = ["EngineLock", "open_sqlite", "stores"]

ENGINE_WAIT = 10.0  # the engine waits longer than a command for a lock: it must not stop


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
        db = await open_db(path, ENGINE_WAIT if engine else LOCK_WAIT)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    return stores(db, str(path), lock)
