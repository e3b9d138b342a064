"""Telemetry and the audit log in PostgreSQL: history, totals, errors, who did what."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from engine.state.postgres.database import Database
from engine.state.stores import AuditEntry, AuditLog, StoredTotals, TelemetryStore


class PostgresTelemetryStore(TelemetryStore):
    """Shared by the nodes: each adds its error counts; totals are last-writer's."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def load(self) -> StoredTotals:
        stats = await self._db.rows("SELECT scope, name, value FROM stats")
        errors = await self._db.rows(
            "SELECT policy, kind, code, count, last_reason, last_at FROM error_totals"
        )
        return StoredTotals([tuple(r.values()) for r in stats], [tuple(r.values()) for r in errors])

    async def save(
        self,
        history: Sequence[tuple[str, float, str]],
        stats: Sequence[tuple[str, str, float]],
        errors: Sequence[tuple[str, str, str, int, str, float]],
        forget_before: float,
    ) -> None:
        async def work(conn: asyncpg.Connection) -> None:
            if history:
                await conn.executemany(
                    "INSERT INTO history (policy, at, body) VALUES ($1, $2, $3) "
                    "ON CONFLICT (policy, at) DO UPDATE SET body = excluded.body",
                    sorted(history),
                )
            if stats:
                await conn.executemany(
                    "INSERT INTO stats (scope, name, value) VALUES ($1, $2, $3) "
                    "ON CONFLICT (scope, name) DO UPDATE SET value = excluded.value",
                    sorted(stats),
                )
            if errors:
                await conn.executemany(
                    "INSERT INTO error_totals (policy, kind, code, count, last_reason, last_at) "
                    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (policy, kind, code) DO UPDATE "
                    "SET count = error_totals.count + excluded.count, "
                    "last_reason = excluded.last_reason, last_at = excluded.last_at",
                    sorted(errors),
                )
            await conn.execute("DELETE FROM history WHERE at < $1", forget_before)

        await self._db.tx(work)

    async def history(
        self, since: float, policy: str | None, limit: int
    ) -> list[tuple[str, float, str]]:
        rows = await self._db.rows(
            "SELECT policy, at, body FROM history WHERE at >= $1 "
            "AND ($2::text IS NULL OR policy = $2) ORDER BY at DESC, policy LIMIT $3",
            since,
            policy,
            limit,
        )
        return [tuple(r.values()) for r in rows]  # type: ignore[misc]

    async def publish(self, snapshot_json: str) -> None:
        await self._db.execute(
            "INSERT INTO settings (name, value) VALUES ('engine', $1) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            snapshot_json,
        )

    async def published(self) -> str | None:
        return await self._db.value("SELECT value FROM settings WHERE name = 'engine'")


class PostgresAuditLog(AuditLog):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, actor: str, action: str, detail: str) -> None:
        await self._db.execute(
            "INSERT INTO audit (at, actor, action, detail) "
            "VALUES (extract(epoch from clock_timestamp()), $1, $2, $3)",
            actor,
            action,
            detail,
        )

    async def recent(self, limit: int = 100) -> list[AuditEntry]:
        rows = await self._db.rows(
            "SELECT id, at, actor, action, detail FROM audit ORDER BY id DESC LIMIT $1", limit
        )
        return [AuditEntry(*r.values()) for r in rows]
