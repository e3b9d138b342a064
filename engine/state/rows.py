"""A policy as a database row and back, the same for every backend.

The columns are the same in SQLite and PostgreSQL; so is what a row may hold.
A row written by hand or by another version can still be wrong, so reading one
checks it (`ValueError` with what is wrong, which the backend turns into a line
naming the policy) instead of letting a bad value reach the copy path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from engine.policy import OPERATIONS, Policy


def policy_row(p: Policy) -> tuple[object, ...]:
    """The policy's columns in table order: id, priority, source, target, filters, flags."""
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
        p.enabled,
        p.paused,
        p.created_at,
    )


def policy_of(row: Mapping[str, Any]) -> Policy:
    """A row read back (sqlite3.Row and asyncpg.Record both map names to values)."""
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
