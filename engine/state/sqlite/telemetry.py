"""Telemetry that outlives a run, in SQLite: totals, error counts, history, the snapshot."""

from __future__ import annotations

from collections.abc import Sequence

from engine.state.sqlite.database import Database
from engine.state.stores import StoredTotals, TelemetryStore


class SQLiteTelemetryStore(TelemetryStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def load(self) -> StoredTotals:
        stats = await self._db.rows("SELECT scope, name, value FROM stats")
        errors = await self._db.rows(
            "SELECT policy, kind, code, count, last_reason, last_at FROM error_totals"
        )
        return StoredTotals([tuple(r) for r in stats], [tuple(r) for r in errors])

    async def save(
        self,
        history: Sequence[tuple[str, float, str]],
        stats: Sequence[tuple[str, str, float]],
        errors: Sequence[tuple[str, str, str, int, str, float]],
        forget_before: float,
    ) -> None:
        async with self._db.tx() as conn:
            await conn.executemany(
                "INSERT OR REPLACE INTO history (policy, at, body) VALUES (?, ?, ?)", history
            )
            await conn.executemany(
                "INSERT OR REPLACE INTO stats (scope, name, value) VALUES (?, ?, ?)", stats
            )
            await conn.executemany(
                "INSERT INTO error_totals (policy, kind, code, count, last_reason, last_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
                "count = count + excluded.count, last_reason = excluded.last_reason, "
                "last_at = excluded.last_at",
                errors,
            )
            await conn.execute("DELETE FROM history WHERE at < ?", (forget_before,))

    async def history(
        self, since: float, policy: str | None, limit: int
    ) -> list[tuple[str, float, str]]:
        sql = "SELECT policy, at, body FROM history WHERE at >= ?"
        args: list[object] = [since]
        if policy:
            sql += " AND policy = ?"
            args.append(policy)
        rows = await self._db.rows(sql + " ORDER BY at DESC, policy LIMIT ?", [*args, limit])
        return [tuple(r) for r in rows]

    async def publish(self, snapshot_json: str) -> None:
        await self._db.write(
            "INSERT INTO settings (name, value) VALUES ('engine', ?) "
            "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
            (snapshot_json,),
        )

    async def published(self) -> str | None:
        rows = await self._db.rows("SELECT value FROM settings WHERE name = 'engine'")
        return rows[0][0] if rows else None
