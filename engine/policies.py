"""Policies: which source bucket replicates to which target, and how.

Parsing and matching are plain functions (no I/O); PolicyStore keeps them in
the state database next to the queue, so a running engine sees a change
(pause, disable, a new policy) on its next reload without a restart.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace

import aiosqlite

from engine.db import Database
from engine.errors import UserError

OPERATIONS = ("delete-marker", "delete", "existing-objects", "metadata-sync")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?(?:/s)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Policy:
    id: str
    priority: int
    source_alias: str
    source_bucket: str
    target_alias: str
    target_bucket: str
    prefix: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    replicate: frozenset[str] = frozenset(OPERATIONS)
    bandwidth: int = 0  # bytes per second, 0 = unlimited
    enabled: bool = True
    paused: bool = False
    created_at: float = 0.0

    @property
    def source(self) -> str:
        return f"{self.source_alias}/{self.source_bucket}"

    @property
    def target(self) -> str:
        return f"{self.target_alias}/{self.target_bucket}"

    def wants(self, operation: str) -> bool:
        return operation in self.replicate

    def matches_key(self, key: str) -> bool:
        return key.startswith(self.prefix)

    def matches_tags(self, tags: dict[str, str]) -> bool:
        """All filter tags must be present (AND; MinIO's OR reading surprises users)."""
        return all(tags.get(k) == v for k, v in self.tags.items())

    def public(self) -> dict[str, object]:
        out = asdict(self)
        out["replicate"] = sorted(self.replicate)
        out["source"], out["target"] = self.source, self.target
        return out


def parse_path(value: str, what: str) -> tuple[str, str]:
    """'ALIAS/BUCKET' -> (alias, bucket)."""
    alias, sep, bucket = value.strip().strip("/").partition("/")
    if not sep or not alias or not bucket or "/" in bucket:
        raise UserError(f"invalid {what} {value!r}: expected ALIAS/BUCKET")
    if not BUCKET_RE.match(bucket) or ".." in bucket:
        raise UserError(f"invalid bucket name {bucket!r} in {what} {value!r}")
    return alias, bucket


def parse_tags(value: str) -> dict[str, str]:
    """'k=v&k2=v2' -> dict, with S3's limits on tag keys and values."""
    tags: dict[str, str] = {}
    if not value.strip():
        return tags
    for pair in value.split("&"):
        key, sep, val = pair.partition("=")
        if not sep or not key:
            raise UserError(f"invalid tag {pair!r} in --tags: expected key=value[&key=value]")
        if len(key) > 128 or len(val) > 256:
            raise UserError(f"invalid tag {key!r}: keys up to 128 and values up to 256 characters")
        if key in tags:
            raise UserError(f"duplicate tag key {key!r} in --tags")
        tags[key] = val
    if len(tags) > 10:
        raise UserError("too many tags in --tags: at most 10")
    return tags


def format_tags(tags: dict[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in tags.items())


def parse_replicate(value: str) -> frozenset[str]:
    chosen = {item.strip() for item in value.split(",") if item.strip()}
    unknown = sorted(chosen - set(OPERATIONS))
    if unknown:
        raise UserError(
            f"invalid --replicate value {', '.join(unknown)!r}: choose from {', '.join(OPERATIONS)}"
        )
    return frozenset(chosen)


def parse_bandwidth(value: str) -> int:
    """'50MiB', '2G', '100MB/s', '0' -> bytes per second (0 = unlimited)."""
    match = SIZE_RE.match(value)
    if not match:
        raise UserError(f"invalid bandwidth {value!r}: expected a size such as 50MiB, 2G or 100MB")
    number, unit, binary = match.groups()
    base = 1024 if binary or not unit else 1000
    exponent = " KMGT".index(unit.upper() or " ")
    result = int(float(number) * base**exponent)
    if result and result < 1024:
        raise UserError(f"bandwidth {value!r} is below 1 KiB/s")
    return result


def parse_prefix(value: str) -> str:
    if len(value.encode()) > 1024:
        raise UserError("invalid --prefix: longer than 1024 bytes")
    if any(ord(ch) < 32 for ch in value):
        raise UserError("invalid --prefix: control characters are not allowed")
    return value


def parse_id(value: str) -> str:
    """A policy id is shown in every table and message: keep it to one plain word."""
    if not ID_RE.match(value):
        raise UserError(
            f"invalid --id {value!r}: use letters, digits, '.', '-' and '_' (max 64 characters)"
        )
    return value


def new_id() -> str:
    return "pol-" + secrets.token_hex(4)


class PolicyStore:
    """Policies in the state database; writes are single transactions."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def all(self) -> list[Policy]:
        return [
            _from_row(r)
            for r in await self._db.rows("SELECT * FROM policies ORDER BY priority DESC")
        ]

    async def get(self, policy_id: str) -> Policy:
        rows = await self._db.rows("SELECT * FROM policies WHERE id = ?", (policy_id,))
        if not rows:
            raise UserError(f"no policy with id {policy_id!r}")
        return _from_row(rows[0])

    async def next_priority(self) -> int:
        rows = await self._db.rows("SELECT COALESCE(MAX(priority), 0) + 1 FROM policies")
        return int(rows[0][0])

    def check_unique(self, policy: Policy, others: Iterable[Policy]) -> None:
        for other in others:
            if other.id == policy.id:
                continue
            if other.priority == policy.priority:
                raise UserError(f"priority {policy.priority} is already used by policy {other.id}")
            same_route = (other.source, other.target) == (policy.source, policy.target)
            if same_route and other.prefix == policy.prefix:
                raise UserError(
                    f"policy {other.id} already replicates {policy.source} to {policy.target}"
                )

    async def check_new(self, policy: Policy) -> None:
        existing = await self.all()
        if any(p.id == policy.id for p in existing):
            raise UserError(f"a policy with id {policy.id!r} already exists")
        self.check_unique(policy, existing)

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

    async def engine_snapshot(self) -> dict[str, object]:
        """The running engine's last live snapshot ({} if none was ever written)."""
        rows = await self._db.rows("SELECT value FROM settings WHERE name = 'engine'")
        return json.loads(rows[0][0]) if rows else {}

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
    return Policy(
        id=row["id"],
        priority=row["priority"],
        source_alias=row["source_alias"],
        source_bucket=row["source_bucket"],
        target_alias=row["target_alias"],
        target_bucket=row["target_bucket"],
        prefix=row["prefix"],
        tags=json.loads(row["tags"] or "{}"),
        replicate=frozenset(x for x in row["replicate"].split(",") if x),
        bandwidth=row["bandwidth"],
        enabled=bool(row["enabled"]),
        paused=bool(row["paused"]),
        created_at=row["created_at"],
    )
