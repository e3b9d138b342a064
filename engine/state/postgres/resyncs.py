"""Resync rows and checkpoints in PostgreSQL: every node sees one resync's progress."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace

import asyncpg

from engine.errors import MissingError, UserError
from engine.model import NewTask
from engine.state.postgres.database import Database, changed
from engine.state.postgres.queue import columns, insert_sql
from engine.state.stores import FAILED, Resync, ResyncStopped, ResyncStore

_FIELDS = (
    "id, policy, state, page_size, started_at, updated_at, walked_at, finished_at, cursor, "
    "current_key, total, scanned, enqueued, replicated, skipped, rate, last_error"
)
_NOTABLE = set(_FIELDS.replace(" ", "").split(",")) - {"id", "policy"}


class PostgresResyncStore(ResyncStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def start(self, policies: Sequence[str], page_size: int) -> list[Resync]:
        now = time.time()

        async def work(conn: asyncpg.Connection) -> list[int]:
            ids = []
            for policy in policies:
                try:
                    async with conn.transaction():  # a savepoint: the error is ours to word
                        ids.append(
                            await conn.fetchval(
                                "INSERT INTO resyncs (policy, state, page_size, started_at, "
                                "updated_at) VALUES ($1, 'running', $2, $3, $3) RETURNING id",
                                policy,
                                page_size,
                                now,
                            )
                        )
                except asyncpg.UniqueViolationError:
                    raise UserError(
                        f"a resync of policy {policy} is already running "
                        "(`replicate resync cancel` stops it)"
                    ) from None
            return ids

        return [await self.get(rid) for rid in await self._db.tx(work)]

    async def cancel(self, policies: Sequence[str]) -> list[int]:
        rows = await self._db.rows(
            "UPDATE resyncs SET state = 'cancelled', finished_at = $1, updated_at = $1 "
            "WHERE state = 'running' AND policy = ANY($2::text[]) RETURNING id",
            time.time(),
            list(policies),
        )
        if not rows:
            raise UserError(f"no resync running for policy {', '.join(policies)}")
        return sorted(r["id"] for r in rows)

    async def get(self, rid: int) -> Resync:
        rows = await self._db.rows(f"SELECT {_FIELDS} FROM resyncs WHERE id = $1", rid)
        if not rows:
            raise MissingError(f"no resync {rid}")
        states = {
            r["state"]: r["n"]
            for r in await self._db.rows(
                "SELECT state, count(*) AS n FROM tasks WHERE resync = $1 AND resync <> 0 "
                "GROUP BY state",
                rid,
            )
        }
        pending = sum(states.get(s, 0) for s in ("pending", "in-flight", "retrying"))
        return Resync(**dict(rows[0]), failed=states.get("failed", 0), pending=pending)

    async def latest(self, policy: str) -> Resync | None:
        rid = await self._db.value("SELECT max(id) FROM resyncs WHERE policy = $1", policy)
        return await self.get(rid) if rid else None

    async def running(self) -> list[Resync]:
        rows = await self._db.rows(
            "SELECT r.id, p.id IS NULL AS orphan FROM resyncs r "
            "LEFT JOIN policies p ON p.id = r.policy WHERE r.state = 'running'"
        )
        for row in rows:
            if row["orphan"]:
                await self.note(
                    row["id"], state=FAILED, last_error="policy removed", finished_at=time.time()
                )
        return [await self.get(r["id"]) for r in rows if not r["orphan"]]

    async def note(self, rid: int, only_if_walking: bool = False, **values: object) -> bool:
        unknown = set(values) - _NOTABLE
        if unknown:
            raise ValueError(f"not a resync field: {', '.join(sorted(unknown))}")
        sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(values, 3))
        where = "AND walked_at IS NULL" if only_if_walking else ""
        status = await self._db.execute(
            f"UPDATE resyncs SET {sets}, updated_at = $2 WHERE id = $1 AND state = 'running' "
            f"{where}",
            rid,
            time.time(),
            *values.values(),
        )
        return changed(status) > 0

    async def checkpoint(
        self, r: Resync, tasks: Sequence[NewTask], cursor: str, versions: int, rate: float
    ) -> Resync:
        async def work(conn: asyncpg.Connection) -> int:
            added = 0
            if tasks:
                # As in SQLite's enqueue_resync: stale map rows go first, then the copies.
                await conn.executemany(
                    "DELETE FROM replicas WHERE policy = $1 AND key = $2 AND source_version = $3 "
                    "AND (target_version IS NULL OR target_version = $4)",
                    [(t.policy, t.key, t.version_id, t.target_version) for t in tasks],
                )
                status = await conn.execute(
                    insert_sql("resync", resync="$12"), *columns(tasks), time.time(), r.id
                )
                added = changed(status)
            status = await conn.execute(
                "UPDATE resyncs SET cursor = $1, scanned = scanned + $2, enqueued = enqueued + $3, "
                "rate = $4, last_error = '', updated_at = $5 WHERE id = $6 AND state = 'running'",
                cursor,
                versions,
                added,
                rate,
                time.time(),
                r.id,
            )
            if not changed(status):
                raise ResyncStopped
            return added

        added = await self._db.tx(work)
        return replace(r, cursor=cursor, scanned=r.scanned + versions, enqueued=r.enqueued + added)
