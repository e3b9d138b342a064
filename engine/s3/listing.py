"""Listings as streams: versions grouped by key, latest entries, two buckets side by side.

Every consumer (scanner, resync, diff, verify) walks a ListObjectVersions listing
in key order without holding more than a page; these are the shapes they share.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

from engine.s3 import ObjectStore
from engine.s3.types import ListedVersion


async def grouped(
    pages: AsyncIterator[list[ListedVersion]],
) -> AsyncGenerator[list[ListedVersion], None]:
    """Versions grouped by key, keys ascending (a key split over two pages is one group)."""
    group: list[ListedVersion] = []
    async for page in pages:
        for version in page:
            if group and version.key != group[0].key:
                yield group
                group = []
            group.append(version)
    if group:
        yield group


async def latest(store: ObjectStore, bucket: str, prefix: str) -> AsyncIterator[ListedVersion]:
    """The latest entry of each key (a live version or a delete marker), keys ascending."""
    async for page in store.list_versions(bucket, prefix):
        for version in page:
            if version.is_latest:
                yield version


async def joined(
    source: AsyncIterator[ListedVersion], target: AsyncIterator[ListedVersion]
) -> AsyncIterator[tuple[ListedVersion | None, ListedVersion | None]]:
    """Merge two key-sorted streams. Python orders str by code point, which is
    the UTF-8 byte order S3 lists in, so the two sides meet key by key."""
    a, b = await anext(source, None), await anext(target, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a.key < b.key):
            yield a, None
            a = await anext(source, None)
        elif a is None or b.key < a.key:
            yield None, b
            b = await anext(target, None)
        else:
            yield a, b
            a, b = await anext(source, None), await anext(target, None)


async def key_versions(store: ObjectStore, bucket: str, key: str) -> list[ListedVersion]:
    """One key's versions and delete markers, newest first: a listing under the key as
    prefix, read only while it still shows this key (longer keys sort after it)."""
    found: list[ListedVersion] = []
    async with contextlib.aclosing(store.list_versions(bucket, key, page_size=100)) as pages:
        async for page in pages:
            found += [v for v in page if v.key == key]
            if not page or page[-1].key != key:
                break
    return found


async def between(
    store: ObjectStore, bucket: str, prefix: str, low: str, high: str
) -> dict[str, list[ListedVersion]]:
    """Versions by key for low < key <= high, newest first (listed fresh for each call)."""
    out: dict[str, list[ListedVersion]] = {}
    async with contextlib.aclosing(store.list_versions(bucket, prefix, key_marker=low)) as pages:
        async for page in pages:
            for version in page:
                if version.key > high:
                    return out
                out.setdefault(version.key, []).append(version)
    return out
