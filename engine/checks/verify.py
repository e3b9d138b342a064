"""`replicate verify`: download both copies and compare what a reader would get.

`replicate diff` trusts listings (sizes and, where plain, MD5 ETags); a replica
can match both and still differ in content type, metadata or tags, and multipart
ETags say nothing about content. Verify reads every byte of both copies (or of
a sample) and compares SHA-256, the copied headers, user metadata and tags.

Memory stays bounded whatever the bucket: bodies are hashed in chunks, the
full run merges the two sorted listings a key at a time, and --sample keeps a
reservoir of N listing entries. Only the differences themselves are kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import TypeVar

from engine.aliases import AliasBook
from engine.checks.report import Difference, PolicyReport
from engine.errors import MirrorlineError, NotFoundError, TransientError, first_error
from engine.policy import Policy, format_tags
from engine.s3 import ListedVersion, ObjectStore
from engine.s3.client import S3Client
from engine.s3.listing import joined, latest
from engine.s3.origin import COPIED_HEADERS, ORIGIN_METADATA

T = TypeVar("T")
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Copy:
    """One side of a key, reduced to what replication promises to carry over."""

    size: int
    sha256: str
    headers: dict[str, str]
    metadata: dict[str, str]
    tags: dict[str, str]


def comparable(
    size: int, sha256: str, headers: dict[str, str], metadata: dict[str, str], tags: dict[str, str]
) -> Copy:
    """Keep only the headers the engine copies and the metadata the user wrote."""
    return Copy(
        size=size,
        sha256=sha256,
        headers={name: headers[name] for name in COPIED_HEADERS if name in headers},
        metadata={k: v for k, v in metadata.items() if k not in ORIGIN_METADATA},
        tags=dict(tags),
    )


def _changed(a: dict[str, str], b: dict[str, str]) -> list[str]:
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def describe(source: Copy, target: Copy) -> list[str]:
    """What differs, one phrase each; [] when the target is a faithful copy."""
    out: list[str] = []
    if source.size != target.size:
        out.append(f"size differs: source {source.size} B, target {target.size} B")
    elif source.sha256 != target.sha256:
        out.append("content sha256 differs")
    for name in _changed(source.headers, target.headers):
        out.append(
            f"{name} differs: source {source.headers.get(name, '-')}, "
            f"target {target.headers.get(name, '-')}"
        )
    meta = _changed(source.metadata, target.metadata)
    if meta:
        # Names only: values can be long, and the operator can fetch them.
        out.append(f"metadata differs: {', '.join(meta)}")
    keys = _changed(source.tags, target.tags)
    if keys:
        mine = format_tags({k: source.tags[k] for k in keys if k in source.tags}) or "-"
        theirs = format_tags({k: target.tags[k] for k in keys if k in target.tags}) or "-"
        out.append(f"tags differ: source {mine}, target {theirs}")
    return out


async def reservoir(items: AsyncIterable[T], size: int, rng: random.Random) -> list[T]:
    """A uniform sample of `size` items in one pass, holding no more than `size` (Algorithm R)."""
    chosen: list[T] = []
    seen = 0
    async for item in items:
        seen += 1
        if len(chosen) < size:
            chosen.append(item)
        else:
            slot = rng.randrange(seen)
            if slot < size:
                chosen[slot] = item
    return chosen


def expected(policy: Policy, version: ListedVersion) -> bool:
    """Whether the policy ever copies this listing entry (tags are checked later)."""
    if version.is_delete_marker or not policy.matches_key(version.key):
        return False
    # The scanner's own rule: with existing-objects off, older writes stay behind.
    return policy.wants("existing-objects") or version.last_modified >= int(policy.created_at)


async def _fetch(
    client: ObjectStore, bucket: str, key: str, version_id: str, tags: dict[str, str] | None
) -> Copy:
    digest = hashlib.sha256()
    got = 0
    async with client.get(bucket, key, version_id) as (head, stream):
        async for chunk in stream.iter_chunked(CHUNK):
            digest.update(chunk)
            got += len(chunk)
    if got != head.size:
        raise TransientError(f"GET {bucket}/{key}: body ended after {got} of {head.size} bytes")
    if tags is None:
        tags = await client.get_tags(bucket, key, head.version_id)
    return comparable(head.size, digest.hexdigest(), head.headers, head.metadata, tags)


async def _fetch_or_none(
    client: ObjectStore,
    bucket: str,
    key: str,
    version_id: str = "",
    tags: dict[str, str] | None = None,
) -> Copy | None:
    """None when the key (or its latest version) is gone: a delete marker answers 404 too."""
    try:
        return await _fetch(client, bucket, key, version_id, tags)
    except NotFoundError:
        return None


class _Verifier:
    def __init__(
        self, policy: Policy, source: ObjectStore, target: ObjectStore, concurrency: int
    ) -> None:
        self.policy, self.source, self.target = policy, source, target
        self.report = PolicyReport(policy.id, policy.source, policy.target)
        self._slots = asyncio.Semaphore(concurrency)

    def differ(self, status: str, key: str, detail: str) -> None:
        self.report.differences.append(Difference(self.policy.id, status, key, detail))

    async def check(self, version: ListedVersion) -> None:
        policy, key = self.policy, version.key
        try:
            tags = await self.source.get_tags(policy.source_bucket, key, version.version_id)
        except NotFoundError:  # deleted since the listing: nothing left to compare
            self.report.skipped += 1
            return
        if not policy.matches_tags(tags):
            self.report.skipped += 1
            return
        async with asyncio.TaskGroup() as group:
            mine = group.create_task(
                _fetch_or_none(self.source, policy.source_bucket, key, version.version_id, tags)
            )
            theirs = group.create_task(_fetch_or_none(self.target, policy.target_bucket, key))
        source, target = mine.result(), theirs.result()
        if source is None:  # deleted since the listing
            self.report.skipped += 1
            return
        self.report.checked += 1
        if target is None:
            self.differ("missing", key, "not on the target")
            return
        found = describe(source, target)
        if found:
            self.differ("differs", key, "; ".join(found))

    def extra(self, source: ListedVersion | None, target: ListedVersion) -> None:
        if target.is_delete_marker or not self.policy.wants("delete-marker"):
            return
        self.report.checked += 1
        where = "deleted on the source" if source is not None else "absent on the source"
        self.differ("extra", target.key, f"live on the target, {where}")

    async def run(self, versions: AsyncIterable[ListedVersion]) -> None:
        """Check each entry, at most `concurrency` at a time, without queueing the listing."""

        async def one(version: ListedVersion) -> None:
            try:
                await self.check(version)
            finally:
                self._slots.release()

        async with asyncio.TaskGroup() as group:
            async for version in versions:
                await self._slots.acquire()
                group.create_task(one(version))


async def verify_policy(
    policy: Policy,
    book: AliasBook,
    *,
    sample: int | None = None,
    rng: random.Random | None = None,
    concurrency: int = 8,
) -> PolicyReport:
    """Compare the policy's source with its target; a sample checks only source keys,
    so keys left live on the target (deletes not carried over) need a full run."""
    clients = [
        S3Client.for_alias(book.get(name), max_connections=2 * concurrency + 2)
        for name in (policy.source_alias, policy.target_alias)
    ]
    verifier = _Verifier(policy, *clients, concurrency)
    source_bucket, target_bucket = policy.source_bucket, policy.target_bucket

    async def covered() -> AsyncIterator[ListedVersion]:
        async for version in latest(clients[0], source_bucket, policy.prefix):
            if expected(policy, version):
                yield version

    async def merged() -> AsyncIterator[ListedVersion]:
        listings = (
            latest(clients[0], source_bucket, policy.prefix),
            latest(clients[1], target_bucket, policy.prefix),
        )
        async for mine, theirs in joined(*listings):
            if mine is not None and expected(policy, mine):
                yield mine
            elif theirs is not None and (mine is None or mine.is_delete_marker):
                verifier.extra(mine, theirs)

    try:
        if sample is None:
            await verifier.run(merged())
        else:
            chosen = await reservoir(covered(), sample, rng or random.Random())
            await verifier.run(_each(sorted(chosen, key=lambda v: v.key)))
    except* MirrorlineError as group:
        raise first_error(group).within(f"verify {policy.id}") from None
    finally:
        for client in clients:
            await client.close()
    verifier.report.differences.sort(key=lambda d: d.key)
    return verifier.report


async def _each(items: list[T]) -> AsyncIterator[T]:
    for item in items:
        yield item
