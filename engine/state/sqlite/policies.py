"""Policies and the engine-wide settings (the pause flag), in SQLite."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import aiosqlite

from engine.errors import MissingError, StateFileError
from engine.policy import OPERATIONS, Policy
from engine.printable import printable
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
            return _from_row(row)
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
            _to_row(policy),
        )
        return policy

    async def update(self, policy: Policy) -> Policy:
        self.check_unique(policy, await self.all())
        row = _to_row(policy)
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


def _to_row(p: Policy) -> tuple[object, ...]:
    return (
        p.id,
        p.priority,
        p.source_alias,
        p.source_bucket,
        p.target_alias,
        p.target_bucket,
        p.prefix,
        json.dumps(p.tags),
        ",".join(sorted(p.replicate)),
        p.bandwidth,
        int(p.enabled),
        int(p.paused),
        p.created_at,
    )


def _from_row(row: aiosqlite.Row) -> Policy:
    tags = json.loads(row["tags"] or "{}")
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise ValueError("its tags are not a JSON object of strings")
    replicate = frozenset(x for x in row["replicate"].split(",") if x)
    if not replicate <= frozenset(OPERATIONS):
        raise ValueError(
            f"unknown operation {', '.join(sorted(replicate - frozenset(OPERATIONS)))}"
        )
    if not isinstance(row["bandwidth"], int) or row["bandwidth"] < 0:
        raise ValueError("its bandwidth is not a whole number of bytes per second")
    return Policy(
        id=row["id"],
        priority=row["priority"],
        source_alias=row["source_alias"],
        source_bucket=row["source_bucket"],
        target_alias=row["target_alias"],
        target_bucket=row["target_bucket"],
        prefix=row["prefix"],
        tags=tags,
        replicate=replicate,
        bandwidth=row["bandwidth"],
        enabled=bool(row["enabled"]),
        paused=bool(row["paused"]),
        created_at=row["created_at"],
    )
