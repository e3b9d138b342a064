"""Policies: which source bucket replicates to which target, and how.

Parsing and matching are plain functions (no I/O); PolicyStore keeps them in
the state database next to the queue, so a running engine sees a change
(pause, disable, a new policy) on its next reload without a restart.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import asdict, dataclass, field

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
