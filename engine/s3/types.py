"""The values a store hands to replication: listing entries, object heads, bodies.

Kept apart from the HTTP client so that `import engine.s3` (the Protocol) and
the in-memory store load no HTTP library.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

Body = (
    bytes | AsyncIterator[bytes | memoryview]
)  # an iterator needs a Content-Length header beside it


@dataclass(frozen=True, slots=True)
class ListedVersion:
    """One entry of a ListObjectVersions page: a version or a delete marker."""

    key: str
    version_id: str
    is_latest: bool
    is_delete_marker: bool
    last_modified: float
    size: int
    etag: str


@dataclass(frozen=True, slots=True)
class ObjectHead:
    """What a GET or HEAD told us about one version."""

    version_id: str
    size: int
    etag: str
    last_modified: float
    headers: dict[str, str]  # response headers, names in lower case
    metadata: dict[str, str]  # x-amz-meta-* without the prefix, names in lower case
    tag_count: int
    is_delete_marker: bool = False


class Stream(Protocol):
    """The body of a GET, read as it arrives (what http1.Response and MemoryStore offer)."""

    async def readexactly(self, n: int) -> bytes: ...

    async def read_some(self, n: int) -> bytes | memoryview:
        """Up to `n` bytes as they arrived (at least one; b"" at the end of the body)."""
        ...

    def iter_chunked(self, n: int) -> AsyncIterator[bytes | memoryview]: ...
