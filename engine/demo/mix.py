"""What a workload writes, decided by a seed alone: the plan of operations.

The plan is a pure function of (seed, mix): no clock, no server answer goes
into it, so the same seed gives the same operations (keys, sizes, tags,
metadata and contents) in a test, in the demo and in a benchmark, however
fast the store answers. The workload (workload.py) only carries it out.

Keys mix plain ASCII with unicode, spaces and emoji, but never what SeaweedFS
rewrites (`//`, a leading `/`, `.` or `..` segments: see
shared/research/s3-servers.md), since a key the store lists differently from
how it was written would be a store quirk, not a replication result.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from engine.errors import UserError

KiB = 1024
MiB = 1024 * KiB
BLOCK = 64 * KiB  # contents repeat a per-operation random block: cheap to make at 16 MiB

PLAIN_DIRS = ("logs", "images", "reports/2026", "tmp", "backups/db")
UNUSUAL_DIRS = ("données", "写真", "emoji 🎉", "with spaces", "Ünïcödé/sub dir")
PLAIN_NAMES = ("report", "photo", "notes", "dump", "invoice")
UNUSUAL_NAMES = ("résumé", "データ", "file (1)", "año nuevo", "naïve café")
EXTENSIONS = {".txt": "text/plain", ".jpg": "image/jpeg", ".json": "application/json", ".bin": ""}
TEAMS = ("blue", "green", "red")
TIERS = ("hot", "warm", "cold")


class Kind(StrEnum):
    CREATE = "create"  # a new key
    OVERWRITE = "overwrite"  # a new version of a live key
    DELETE = "delete"  # a delete marker on a live key
    RETAG = "retag"  # new tags on a live key's latest version (no new version)


@dataclass(frozen=True, slots=True)
class SizeClass:
    """Sizes from `low` to `high` bytes (inclusive, log-uniform), drawn with `weight`."""

    low: int
    high: int
    weight: float


@dataclass(frozen=True)
class Mix:
    """How often each kind of operation comes, and what the writes look like.

    The default is the demo's: mostly small objects, some of several MiB, and a
    rare multipart upload of 16 MiB or more. Tests pass smaller classes.
    """

    create: float = 0.55
    overwrite: float = 0.2
    delete: float = 0.1
    retag: float = 0.15
    sizes: tuple[SizeClass, ...] = (
        SizeClass(0, 0, 0.05),
        SizeClass(1, 64 * KiB, 0.6),
        SizeClass(64 * KiB, 1 * MiB, 0.25),
        SizeClass(1 * MiB, 8 * MiB, 0.09),
        SizeClass(16 * MiB, 24 * MiB, 0.01),
    )
    multipart_from: int = 16 * MiB  # writes this large go up as multipart uploads
    part_size: int = 8 * MiB
    tagged: float = 0.3  # share of writes that carry tags
    with_metadata: float = 0.5  # share of writes that carry user metadata
    unusual_keys: float = 0.3  # share of new keys with unicode, spaces or emoji
    prefix: str = "load/"

    def __post_init__(self) -> None:
        kinds = (self.create, self.overwrite, self.delete, self.retag)
        if min(kinds) < 0 or self.create <= 0:
            raise UserError("mix: weights must not be negative, and creates must have one")
        if not self.sizes or any(s.low < 0 or s.high < s.low or s.weight < 0 for s in self.sizes):
            raise UserError("mix: each size class needs 0 <= low <= high and a weight >= 0")
        if sum(s.weight for s in self.sizes) <= 0:
            raise UserError("mix: at least one size class needs a weight")
        if self.part_size < 5 * MiB or self.multipart_from < self.part_size:
            raise UserError("mix: parts are at least 5 MiB, and multipart starts at a part")
        if "//" in self.prefix or self.prefix.startswith("/"):
            raise UserError("mix: the prefix may not start with '/' or hold '//'")


@dataclass(frozen=True, slots=True)
class Op:
    """One planned operation; `index` is its place in the plan."""

    index: int
    kind: Kind
    key: str
    size: int = 0
    content_seed: int = 0
    content_type: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()

    @property
    def writes(self) -> bool:
        return self.kind in (Kind.CREATE, Kind.OVERWRITE)

    def body(self) -> bytes:
        """The contents, made from the plan alone (the same bytes on every run)."""
        if self.size == 0:
            return b""
        block = random.Random(self.content_seed).randbytes(min(self.size, BLOCK))
        return (block * -(-self.size // len(block)))[: self.size]


@dataclass
class Planner:
    """Draws the plan, one operation at a time, keeping its own view of the live keys."""

    seed: int
    mix: Mix = field(default_factory=Mix)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._live: list[str] = []  # live keys, for a uniform pick
        self._where: dict[str, int] = {}  # key -> its place in _live (swap-remove)
        self._index = 0

    def __iter__(self) -> Iterator[Op]:
        return self

    def __next__(self) -> Op:
        rng, mix = self._rng, self.mix
        kinds = [Kind.CREATE, Kind.OVERWRITE, Kind.DELETE, Kind.RETAG]
        weights = [mix.create, mix.overwrite, mix.delete, mix.retag]
        kind = rng.choices(kinds, weights)[0] if self._live else Kind.CREATE
        index, self._index = self._index, self._index + 1
        if kind is Kind.CREATE:
            key = self._new_key(index)
            self._add(key)
            return self._write(index, kind, key)
        key = self._live[rng.randrange(len(self._live))]
        if kind is Kind.OVERWRITE:
            return self._write(index, kind, key)
        if kind is Kind.DELETE:
            self._remove(key)
            return Op(index, kind, key)
        return Op(index, kind, key, tags=self._tags(index))

    def _write(self, index: int, kind: Kind, key: str) -> Op:
        rng, mix = self._rng, self.mix
        size_class = rng.choices(mix.sizes, [s.weight for s in mix.sizes])[0]
        size = _draw_size(rng, size_class)
        tags = self._tags(index) if rng.random() < mix.tagged else ()
        metadata = (
            (("app", "mirrorline-demo"), ("batch", str(index // 100)))
            if rng.random() < mix.with_metadata
            else ()
        )
        content_type = next((t for ext, t in EXTENSIONS.items() if key.endswith(ext)), "")
        return Op(index, kind, key, size, rng.getrandbits(64), content_type, tags, metadata)

    def _tags(self, index: int) -> tuple[tuple[str, str], ...]:
        return (
            ("team", self._rng.choice(TEAMS)),
            ("tier", self._rng.choice(TIERS)),
            ("op", str(index)),
        )

    def _new_key(self, index: int) -> str:
        rng = self._rng
        unusual = rng.random() < self.mix.unusual_keys
        folder = rng.choice(UNUSUAL_DIRS if unusual else PLAIN_DIRS)
        name = rng.choice(UNUSUAL_NAMES if unusual else PLAIN_NAMES)
        ext = rng.choice(tuple(EXTENSIONS))
        separator = " " if unusual else "-"
        return f"{self.mix.prefix}{folder}/{name}{separator}{index:06}{ext}"

    def _add(self, key: str) -> None:
        self._where[key] = len(self._live)
        self._live.append(key)

    def _remove(self, key: str) -> None:
        place = self._where.pop(key)
        last = self._live.pop()
        if last != key:
            self._live[place] = last
            self._where[last] = place


def _draw_size(rng: random.Random, size_class: SizeClass) -> int:
    if size_class.high == 0:
        return 0
    low = max(size_class.low, 1)
    return min(
        size_class.high, int(math.exp(rng.uniform(math.log(low), math.log(size_class.high + 1))))
    )
