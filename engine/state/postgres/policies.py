"""Policies and the cluster-wide pause flag, in PostgreSQL: every node reads the same ones."""

from __future__ import annotations

import time
from dataclasses import replace

import asyncpg

from engine.errors import MissingError, UserError
from engine.policy import Policy
from engine.state.postgres.database import Database, changed
from engine.state.rows import policy_of, policy_row
from engine.state.stores import PolicyStore

_FIELDS = (
    "id, priority, source_alias, source_bucket, target_alias, target_bucket, prefix, tags, "
    "replicate, bandwidth, enabled, paused, created_at"
)


class PostgresPolicyStore(PolicyStore):
    def __init__(self, db: Database) -> None:
        self._db = db

    async def all(self) -> list[Policy]:
        rows = await self._db.rows(f"SELECT {_FIELDS} FROM policies ORDER BY priority DESC")
        return [policy_of(r) for r in rows]

    async def get(self, policy_id: str) -> Policy:
        rows = await self._db.rows(f"SELECT {_FIELDS} FROM policies WHERE id = $1", policy_id)
        if not rows:
            raise MissingError(f"no policy with id {policy_id!r}")
        return policy_of(rows[0])

    async def next_priority(self) -> int:
        return int(await self._db.value("SELECT COALESCE(MAX(priority), 0) + 1 FROM policies"))

    async def add(self, policy: Policy) -> Policy:
        await self.check_new(policy)
        policy = replace(policy, created_at=policy.created_at or time.time())
        try:
            await self._db.execute(
                f"INSERT INTO policies ({_FIELDS}) VALUES "
                "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                *policy_row(policy),
            )
        except asyncpg.UniqueViolationError:  # another node added one just now
            raise UserError(f"policy {policy.id} clashes with one added meanwhile") from None
        return policy

    async def update(self, policy: Policy) -> Policy:
        self.check_unique(policy, await self.all())
        await self._db.execute(
            "UPDATE policies SET priority = $2, source_alias = $3, source_bucket = $4, "
            "target_alias = $5, target_bucket = $6, prefix = $7, tags = $8, replicate = $9, "
            "bandwidth = $10, enabled = $11, paused = $12, created_at = $13 WHERE id = $1",
            *policy_row(policy),
        )
        return policy

    async def remove(self, policy_id: str) -> None:
        await self.get(policy_id)
        await self._db.execute("DELETE FROM policies WHERE id = $1", policy_id)

    async def set_paused(self, paused: bool, policy_id: str | None = None) -> int:
        if policy_id is None:
            await self._db.execute(
                "INSERT INTO settings (name, value) VALUES ('paused', $1) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                "1" if paused else "0",
            )
            return 1
        await self.get(policy_id)
        return changed(
            await self._db.execute(
                "UPDATE policies SET paused = $1 WHERE id = $2", paused, policy_id
            )
        )

    async def engine_paused(self) -> bool:
        return await self._db.value("SELECT value FROM settings WHERE name = 'paused'") == "1"
