"""A pool of asyncpg connections to the shared database, and its transactions.

Every change is one short transaction. Several nodes write at once, so a
transaction may lose a deadlock or a serialization race to another node:
`tx` runs the work again (it is always safe to: nothing is kept outside the
transaction), a few times, before the error is reported.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from engine.config import public_address
from engine.errors import TransientError, UserError
from engine.state.postgres.schema import MIGRATION_LOCK, MIGRATIONS

log = logging.getLogger("mirrorline.state.postgres")

T = TypeVar("T")
_RACES = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
DEFAULT_LEASE = 15.0  # seconds a node may go unheard before its leases are taken over


def split_options(url: str) -> tuple[str, float]:
    """Our own `lease=SECONDS` query option, taken out of what asyncpg is given."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query)
    lease = DEFAULT_LEASE
    kept = []
    for name, value in query:
        if name == "lease":
            try:
                lease = float(value)
            except ValueError:
                raise UserError(f"lease={value!r} in the queue address is not a number") from None
            if lease < 1:
                raise UserError("lease in the queue address must be at least 1 second")
        else:
            kept.append((name, value))
    return urlunsplit(parts._replace(query=urlencode(kept))), lease


class Database:
    def __init__(self, pool: asyncpg.Pool, dsn: str, where: str) -> None:
        self.pool = pool
        self.dsn = dsn
        self.where = where

    async def tx(self, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run `work` in one transaction, again if it lost a race to another writer."""
        for attempt in range(6):
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    return await work(conn)
            except _RACES as exc:
                if attempt == 5:
                    raise TransientError(f"the queue database is too contended: {exc}") from None
                await asyncio.sleep(0.01 * 2**attempt)
        raise AssertionError("unreachable")

    async def execute(self, sql: str, *args: Any) -> str:
        return await self.tx(lambda conn: conn.execute(sql, *args))

    async def rows(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self.pool.acquire() as conn:
            return list(await conn.fetch(sql, *args))

    async def value(self, sql: str, *args: Any) -> Any:
        async with self.pool.acquire() as conn:
            return await conn.fetchval(sql, *args)

    async def close(self) -> None:
        await self.pool.close()


def changed(status: str) -> int:
    """Rows a command touched, from asyncpg's status ("UPDATE 3", "INSERT 0 2")."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


async def connect(url: str) -> Database:
    """Open a pool on the database at `url` and bring its schema up to date."""
    dsn, _ = split_options(url)
    where = public_address(url)
    try:
        # JIT off: every statement here is short, and the planner cannot size the
        # triggers' transition tables, so a cost estimate could pay for a compile.
        pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=8, command_timeout=60, server_settings={"jit": "off"}
        )
    except (OSError, asyncpg.PostgresError, ValueError) as exc:
        raise UserError(f"cannot open the queue database {where}: {exc}") from None
    db = Database(pool, dsn, where)
    try:
        await _migrate(db)
    except BaseException:
        await pool.close()
        raise
    return db


async def _migrate(db: Database) -> None:
    async def work(conn: asyncpg.Connection) -> None:
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS mirrorline_schema (version INTEGER NOT NULL)"
        )
        version = await conn.fetchval("SELECT max(version) FROM mirrorline_schema") or 0
        for number, statements in enumerate(MIGRATIONS[version:], version + 1):
            for sql in statements:
                await conn.execute(sql)
            await conn.execute("INSERT INTO mirrorline_schema (version) VALUES ($1)", number)
            log.info("queue database %s migrated to schema %d", db.where, number)

    try:
        await db.tx(work)
    except asyncpg.InsufficientPrivilegeError as exc:
        raise UserError(
            f"the queue database {db.where} refused the schema ({exc}); see docs/postgres.md "
            "for the grants"
        ) from None
