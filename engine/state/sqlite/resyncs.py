"""Resync rows and checkpoints in SQLite; a page's tasks and its cursor move together."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import replace

from engine.errors import MissingError, UserError
from engine.model import NewTask
from engine.state.sqlite.database import Database
from engine.state.sqlite.queue import enqueue_resync
from engine.state.stores import FAILED, Resync, ResyncStopped, ResyncStore


class SQLiteResyncStore(ResyncStore):
    """Resyncs in the state database; every change is one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def start(self, policies: Sequence[str], page_size: int) -> list[Resync]:
        """New resyncs for these policies, all or none (one is already running: an error)."""
        now, ids = time.time(), []
        async with self._db.tx() as conn:
            for policy in policies:
                try:  # the unique index resyncs_running says no
                    cur = await conn.execute(
                        "INSERT INTO resyncs (policy, state, page_size, started_at, updated_at) "
                        "VALUES (?, 'running', ?, ?, ?)",
                        (policy, page_size, now, now),
                    )
                except sqlite3.IntegrityError:
                    raise UserError(
                        f"a resync of policy {policy} is already running "
                        "(`replicate resync cancel` stops it)"
                    ) from None
                ids.append(int(cur.lastrowid or 0))
        return [await self.get(rid) for rid in ids]

    async def cancel(self, policies: Sequence[str]) -> list[int]:
        marks = ",".join("?" * len(policies))
        async with self._db.tx() as conn:
            async with conn.execute(
                "UPDATE resyncs SET state = 'cancelled', finished_at = ?1, updated_at = ?1 "
                f"WHERE state = 'running' AND policy IN ({marks}) RETURNING id",
                (time.time(), *policies),
            ) as cur:
                ids = [row[0] for row in await cur.fetchall()]
            if not ids:
                raise UserError(f"no resync running for policy {', '.join(policies)}")
        return sorted(ids)

    async def get(self, rid: int) -> Resync:
        rows = await self._db.rows("SELECT * FROM resyncs WHERE id = ?", (rid,))
        if not rows:
            raise MissingError(f"no resync {rid}")
        # `resync != 0` spells out the partial index tasks_resync's condition, so it is used.
        sql = "SELECT state, COUNT(*) FROM tasks WHERE resync = ? AND resync != 0 GROUP BY state"
        states = dict(await self._db.rows(sql, (rid,)))
        pending = sum(states.get(s, 0) for s in ("pending", "in-flight", "retrying"))
        return Resync(**dict(rows[0]), failed=states.get("failed", 0), pending=pending)

    async def latest(self, policy: str) -> Resync | None:
        rows = await self._db.rows("SELECT MAX(id) FROM resyncs WHERE policy = ?", (policy,))
        return await self.get(rows[0][0]) if rows and rows[0][0] else None

    async def running(self) -> list[Resync]:
        """Running resyncs; those whose policy was removed end as failed."""
        rows = await self._db.rows(
            "SELECT r.id, p.id IS NULL FROM resyncs r LEFT JOIN policies p ON p.id = r.policy "
            "WHERE r.state = 'running'"
        )
        for rid, _ in filter(lambda row: row[1], rows):
            await self.note(rid, state=FAILED, last_error="policy removed", finished_at=time.time())
        return [await self.get(rid) for rid, orphan in rows if not orphan]

    async def note(self, rid: int, only_if_walking: bool = False, **values: object) -> bool:
        sets = ", ".join(f"{name} = ?" for name in values)
        where = "AND walked_at IS NULL" if only_if_walking else ""
        changed = await self._db.write(
            f"UPDATE resyncs SET {sets}, updated_at = ? WHERE id = ? AND state = 'running' {where}",
            (*values.values(), time.time(), rid),
        )
        return changed > 0

    async def checkpoint(
        self, r: Resync, tasks: Sequence[NewTask], cursor: str, versions: int, rate: float
    ) -> Resync:
        """Queue a page's tasks and move the cursor past it, in one transaction."""
        async with self._db.tx() as conn:
            added = await enqueue_resync(conn, r.id, tasks)
            cur = await conn.execute(
                "UPDATE resyncs SET cursor = ?, scanned = scanned + ?, "
                "enqueued = enqueued + ?, rate = ?, last_error = '', updated_at = ? "
                "WHERE id = ? AND state = 'running'",
                (cursor, versions, added, rate, time.time(), r.id),
            )
            if not cur.rowcount:
                raise ResyncStopped  # cancelled meanwhile: the page's tasks roll back too
        return replace(r, cursor=cursor, scanned=r.scanned + versions, enqueued=r.enqueued + added)
