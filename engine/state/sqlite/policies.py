"""Policies and the engine-wide settings (the pause flag), in SQLite."""

from __future__ import annotations

import time
from dataclasses import replace

import aiosqlite

from engine.errors import MissingError, StateFileError
from engine.policy import Policy
from engine.printable import printable
from engine.state.rows import policy_of, policy_row
from engine.state.sqlite.database import Database
from engine.state.stores import PolicyStore


class SQLitePolicyStore(PolicyStore):
    """Policies in the state database; writes are single transactions."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def all(self) -> list[Policy]:
        rows = await self._db.rows("SELECT * FROM policies ORDER BY priority DESC")
        return [self._policy(r) for r in rows]

    async def get(self, policy_id: str) -> Policy:
        rows = await self._db.rows("SELECT * FROM policies WHERE id = ?", (policy_id,))
        if not rows:
            raise MissingError(f"no policy with id {policy_id!r}")
        return self._policy(rows[0])

    def _policy(self, row: aiosqlite.Row) -> Policy:
        """A row as a Policy, or which row cannot be one (written by hand, or by a bug)."""
        try:
            return policy_of(row)
        except (ValueError, TypeError, AttributeError) as exc:
            raise StateFileError(
                f"{self._db.path}: policy {printable(str(row['id']))!r} cannot be read ({exc})"
            ) from None

    async def next_priority(self) -> int:
        rows = await self._db.rows("SELECT COALESCE(MAX(priority), 0) + 1 FROM policies")
        return int(rows[0][0])

    async def add(self, policy: Policy) -> Policy:
        await self.check_new(policy)
        policy = replace(policy, created_at=policy.created_at or time.time())
        await self._db.write(
            "INSERT INTO policies (id, priority, source_alias, source_bucket, target_alias, "
            "target_bucket, prefix, tags, replicate, bandwidth, enabled, paused, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            policy_row(policy),
        )
        return policy

    async def update(self, policy: Policy) -> Policy:
        self.check_unique(policy, await self.all())
        row = policy_row(policy)
        await self._db.write(
            "UPDATE policies SET priority = ?, source_alias = ?, source_bucket = ?, "
            "target_alias = ?, target_bucket = ?, prefix = ?, tags = ?, replicate = ?, "
            "bandwidth = ?, enabled = ?, paused = ?, created_at = ? WHERE id = ?",
            (*row[1:], row[0]),
        )
        return policy

    async def remove(self, policy_id: str) -> None:
        await self.get(policy_id)
        await self._db.write("DELETE FROM policies WHERE id = ?", (policy_id,))

    async def set_paused(self, paused: bool, policy_id: str | None = None) -> int:
        if policy_id is None:
            await self._db.write(
                "INSERT INTO settings (name, value) VALUES ('paused', ?) "
                "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                ("1" if paused else "0",),
            )
            return 1
        await self.get(policy_id)
        return await self._db.write(
            "UPDATE policies SET paused = ? WHERE id = ?", (int(paused), policy_id)
        )

    async def engine_paused(self) -> bool:
        rows = await self._db.rows("SELECT value FROM settings WHERE name = 'paused'")
        return bool(rows and rows[0][0] == "1")
