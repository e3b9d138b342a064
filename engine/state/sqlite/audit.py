"""The audit log in SQLite: one row per change, with its actor."""

from __future__ import annotations

import time

from engine.state.sqlite.database import Database
from engine.state.stores import AuditEntry, AuditLog


class SQLiteAuditLog(AuditLog):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, actor: str, action: str, detail: str) -> None:
        await self._db.write(
            "INSERT INTO audit (at, actor, action, detail) VALUES (?, ?, ?, ?)",
            (time.time(), actor, action, detail),
        )

    async def recent(self, limit: int = 100) -> list[AuditEntry]:
        rows = await self._db.rows(
            "SELECT id, at, actor, action, detail FROM audit ORDER BY id DESC LIMIT ?", (limit,)
        )
        return [AuditEntry(*row) for row in rows]
