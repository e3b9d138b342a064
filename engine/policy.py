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
from engine.printable import printable

OPERATIONS = ("delete-marker", "delete", "existing-objects", "metadata-sync")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?(?:/s)?\s*$", re.IGNORECASE)
MAX_PRIORITY = 1_000_000_000  # far below SQLite's 2**63: any sane ranking fits
MAX_BANDWIDTH = 1024**4  # 1 TiB/s: a higher "limit" is a typo, not a limit


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
    if not BUCKET_RE.fullmatch(bucket) or ".." in bucket:
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
        plain_text(pair, "--tags")
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
    """'delete,metadata-sync' -> the operations; none at all is refused (it replicates nothing
    but new puts, which is never what `--replicate ''` meant)."""
    chosen = {item.strip() for item in value.split(",") if item.strip()}
    if not chosen:
        raise UserError(
            f"invalid --replicate {value!r}: name at least one of {', '.join(OPERATIONS)}"
        )
    unknown = sorted(chosen - set(OPERATIONS))
    if unknown:
        shown = ", ".join(unknown)
        raise UserError(f"invalid --replicate value {shown!r}: choose from {', '.join(OPERATIONS)}")
    return frozenset(chosen)


def parse_size(value: str, what: str) -> int:
    """'50MiB', '2G', '100MB' -> bytes (KiB, MiB... binary; K, KB, M, MB... decimal)."""
    match = SIZE_RE.fullmatch(value)
    if not match:
        raise UserError(f"invalid {what} {value!r}: expected a size such as 50MiB, 2G or 100MB")
    number, unit, binary = match.groups()
    base = 1024 if binary or not unit else 1000
    exponent = " KMGT".index(unit.upper() or " ")
    return int(float(number) * base**exponent)


def parse_bandwidth(value: str) -> int:
    """'50MiB', '2G', '100MB/s', '0' -> bytes per second (0 = unlimited)."""
    result = parse_size(value, "bandwidth")
    if result and result < 1024:
        raise UserError(f"bandwidth {value!r} is below 1 KiB/s")
    if result > MAX_BANDWIDTH:
        raise UserError(f"bandwidth {value!r} is above 1 TiB/s: give a real limit, or 0 for none")
    return result


def plain_text(value: str, what: str) -> str:
    """Text an operator types (a prefix, tags): valid UTF-8, no control or bidi characters.
    (Messages quote values with repr, which escapes exactly these.)

    A control character in a filter matches nothing a person meant and repaints
    the terminal of whoever lists it; text the shell could not decode (lone
    surrogates from undecodable argv bytes) cannot be stored or sent as UTF-8."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(f"invalid {what}: not valid UTF-8 text") from None
    if printable(value) != value:
        raise UserError(f"invalid {what} {value!r}: control characters are not allowed")
    return value


def parse_prefix(value: str) -> str:
    plain_text(value, "--prefix")
    if len(value.encode()) > 1024:
        raise UserError("invalid --prefix: longer than 1024 bytes")
    return value


def parse_priority(value: int) -> int:
    """Priorities order policies; outside 0..MAX_PRIORITY they would only overflow SQLite."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_PRIORITY:
        raise UserError(f"invalid --priority {value!r}: expected 0 to {MAX_PRIORITY:,}")
    return value


def parse_id(value: str) -> str:
    """A policy id is shown in every table and message: keep it to one plain word."""
    if not ID_RE.fullmatch(value):
        raise UserError(
            f"invalid --id {value!r}: use letters, digits, '.', '-' and '_' (max 64 characters)"
        )
    return value


def new_id() -> str:
    return "pol-" + secrets.token_hex(4)
