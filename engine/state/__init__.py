"""Everything durable, behind small interfaces; nothing above this package names a backend.

`open_state(where)` returns one `State`: the task queue, the policy, resync, telemetry
and audit stores, all on one backend chosen by the address (saq's `from_url`):
a path (or `sqlite:///path`) is the embedded SQLite database, one engine per state
dir; `postgresql://user@host:port/db` is a database several engines share. The backend module is imported only when its address is opened, so reading
this package loads no database driver.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import UserError
from engine.state.queue import Replica, TaskQueue
from engine.state.stores import State

__all__ = ["Replica", "State", "TaskQueue", "open_state"]


async def open_state(where: str | Path, engine: bool = False) -> State:
    """Open (creating and migrating) the state at `where`.

    With `engine`, also take what a running engine must hold alone (for SQLite,
    the state dir's lock: a second engine on one database would copy everything twice).
    """
    text = str(where)
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "sqlite", text
    if scheme == "sqlite":
        from engine.state.sqlite import open_sqlite

        return await open_sqlite(Path(rest), engine)
    if scheme in ("postgresql", "postgres"):
        try:
            from engine.state.postgres import open_postgres
        except ImportError:
            raise UserError(
                "a PostgreSQL queue needs asyncpg: pip install 'mirrorline[postgres]'"
            ) from None
        return await open_postgres(text, engine)
    raise UserError(
        f"unknown state backend {scheme!r} (expected a path, sqlite:// or postgresql://)"
    )
