"""The object stores, and `ObjectStore`: all that replication asks of one.

    ObjectStore (this Protocol)   what scanner, transfer, resync, dispatcher, health and the
                                  checks call; nothing else of a store is theirs to use
    ├── client.S3Client           the data path to a real endpoint (signs, streams; http1.py)
    └── memory.MemoryStore        versioned buckets in a dict, with fault hooks (tests, demo)
    control.ControlClient         the minio SDK control plane (buckets, versioning, events)

A store fails only with the error tree of engine.errors; vendor codes are mapped
to it in errors.classify, and nowhere else. Importing this module loads no HTTP
library: the Protocol and its values (types.py) are plain Python.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from engine.s3.types import Body, ListedVersion, ObjectHead, Stream

__all__ = ["Body", "ListedVersion", "ObjectHead", "ObjectStore", "Stream"]


class ObjectStore(Protocol):
    """One endpoint's versioned buckets, as replication uses them.

    A version id "" means the latest version. Every failure is a MirrorlineError:
    NotFoundError for a key or version that is not there (a latest delete marker
    included; to a HEAD, a missing bucket too: its 404 has no code), PermanentError
    for a missing bucket or a refused request (AccessDeniedError: the credentials),
    TransientError for what may work later (with `link_down` when the endpoint could
    not be reached at all, and then `endpoint` set to this store's).
    """

    endpoint: str  # scheme://host:port: how the dispatcher knows which link went down

    async def list_buckets(self) -> list[str]:
        """Cheap proof of reachability and credentials (the health probe)."""
        ...

    def list_versions(
        self, bucket: str, prefix: str = "", key_marker: str = "", page_size: int = 1000
    ) -> AsyncGenerator[list[ListedVersion], None]:
        """Pages of versions and delete markers after `key_marker`: keys ascending (UTF-8
        byte order), each key's versions newest first; a key may span two pages."""
        ...

    def get(
        self,
        bucket: str,
        key: str,
        version_id: str = "",
        byte_range: tuple[int, int] | None = None,
        if_match: str = "",
    ) -> AbstractAsyncContextManager[tuple[ObjectHead, Stream]]:
        """A version's head and its body, streamed while the context is open. With
        `byte_range` (first, last byte, inclusive) only those bytes, and the head's size
        is theirs; with `if_match` (an ETag) PermanentError unless the version has it."""
        ...

    async def head(self, bucket: str, key: str, version_id: str = "") -> ObjectHead: ...

    async def put(
        self, bucket: str, key: str, body: Body, headers: dict[str, str]
    ) -> tuple[str, str]:
        """A new version from one body; returns (version id, ETag). `headers` carry
        Content-Length, Content-MD5, standard headers, x-amz-meta-* and x-amz-tagging.
        A streamed body without Content-MD5 is checked by the store all the same (a CRC32
        trailer, engine/s3/chunked.py); its pieces are then STREAM_CHUNK bytes each."""
        ...

    async def create_multipart(self, bucket: str, key: str, headers: dict[str, str]) -> str:
        """Start an upload (headers as for put); returns its upload id."""
        ...

    async def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        number: int,
        body: Body,
        md5: str,
        length: int,
    ) -> str:
        """One part (numbered from 1, `md5` base64, or "" for a streamed body checked as
        in `put`); returns the part's ETag for complete."""
        ...

    async def complete_multipart(
        self, bucket: str, key: str, upload_id: str, etags: list[str]
    ) -> tuple[str, str]:
        """The new version, visible only now; returns (version id, ETag "<md5>-<parts>")."""
        ...

    async def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None: ...

    async def pending_uploads(self, bucket: str, key: str) -> dict[str, int]:
        """Multipart uploads of exactly `key` begun and neither completed nor aborted:
        upload id -> bytes in its uploaded parts. What a dead run may have left."""
        ...

    async def delete(self, bucket: str, key: str, version_id: str = "") -> tuple[str, bool]:
        """Without a version: a new delete marker. With one: that version is removed for
        good. Returns (version id, whether it is / was a delete marker)."""
        ...

    async def get_tags(self, bucket: str, key: str, version_id: str = "") -> dict[str, str]: ...

    async def put_tags(self, bucket: str, key: str, version_id: str, tags: dict[str, str]) -> None:
        """Replace a version's tags; {} removes them."""
        ...
