"""MemoryStore: versioned buckets in a dict, an ObjectStore with fault hooks.

For logic tests of the scanner, transfer, dispatcher and resync without servers
(and a demo without them). It behaves as SeaweedFS does on everything replication
relies on, which tests/replication/test_store_contract.py checks against a real
server: version ids, delete markers (also for a key that never existed), deletes
of unknown versions that succeed, ETag = MD5 (multipart: MD5 of the part MD5s,
"-N"), Content-MD5 checked, parts of at least 5 MiB, 404s without a code on HEAD,
user metadata, tags, the copied standard headers, listings split into pages.

Faults: `hook` is awaited before every call with what is asked (`Call`), and
before every read of a GET body ("read"); it may raise a MirrorlineError or wait.
`fail()` and `pause()` build the usual ones; `calls` records everything asked.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from email.utils import formatdate
from urllib.parse import parse_qsl

from engine.errors import MirrorlineError, TransientError
from engine.s3.errors import classify
from engine.s3.origin import COPIED_HEADERS
from engine.s3.types import Body, ListedVersion, ObjectHead

MIN_PART = 5 * 1024 * 1024  # S3's (and SeaweedFS's) smallest part but the last
DEFAULT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class Call:
    """One operation asked of the store: the ObjectStore method's name, or "read"."""

    op: str
    bucket: str = ""
    key: str = ""
    version_id: str = ""


Hook = Callable[[Call], Awaitable[None]]


def fail(error: MirrorlineError, op: str = "", nth: int = 1, times: float = 1) -> Hook:
    """Raise `error` on the nth call of `op` (of any op when "") and the times-1 after it."""
    seen = 0

    async def hook(call: Call) -> None:
        nonlocal seen
        if op in ("", call.op):
            seen += 1
            if nth <= seen < nth + times:
                raise error

    return hook


def pause(gate: asyncio.Event, op: str = "") -> Hook:
    """Hold every call of `op` (of any op when "") until `gate` is set."""

    async def hook(call: Call) -> None:
        if op in ("", call.op):
            await gate.wait()

    return hook


@dataclass
class Version:
    """One version or delete marker, as the store holds it."""

    key: str
    version_id: str
    last_modified: float
    data: bytes = b""
    etag: str = ""
    headers: dict[str, str] = field(default_factory=dict)  # the standard ones, lower case
    metadata: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    is_delete_marker: bool = False

    def head(self) -> ObjectHead:
        headers = {
            **self.headers,
            "content-length": str(len(self.data)),
            "etag": f'"{self.etag}"',
            "last-modified": formatdate(self.last_modified, usegmt=True),
            "x-amz-version-id": self.version_id,
            **{f"x-amz-meta-{k}": v for k, v in self.metadata.items()},
        }
        if self.tags:
            headers["x-amz-tagging-count"] = str(len(self.tags))
        size, meta, tags = len(self.data), dict(self.metadata), len(self.tags)
        return ObjectHead(self.version_id, size, self.etag, self.last_modified, headers, meta, tags)


class _Reader:
    """A GET body; each read first passes the store's hook (a fault mid-copy)."""

    def __init__(self, data: bytes, store: MemoryStore, call: Call) -> None:
        self._data, self._at, self._store, self._call = data, 0, store, call

    async def readexactly(self, n: int) -> bytes:
        await self._store._hook(self._call)
        chunk = self._data[self._at : self._at + n]
        self._at += len(chunk)
        if len(chunk) < n:
            raise asyncio.IncompleteReadError(chunk, n)
        return chunk

    async def read_some(self, n: int) -> bytes:
        if self._at == len(self._data):  # the end: no read, so no hook
            return b""
        return await self.readexactly(min(n, len(self._data) - self._at))

    async def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        while piece := await self.read_some(n):
            yield piece


@dataclass
class _Upload:
    key: str
    headers: dict[str, str]
    parts: dict[int, bytes] = field(default_factory=dict)


class MemoryStore:
    """Versioned buckets in memory. `clock` stamps versions (whole seconds, as listed)."""

    def __init__(
        self,
        endpoint: str = "memory://store",
        buckets: tuple[str, ...] = (),
        *,
        clock: Callable[[], float] = time.time,
        hook: Hook | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.buckets: dict[str, dict[str, list[Version]]] = {b: {} for b in buckets}
        self.uploads: dict[str, _Upload] = {}
        self.calls: list[Call] = []
        self.hook = hook
        self.clock = clock

    def unreachable(self) -> TransientError:
        """The error a dropped connection to this store raises (a link-down fault)."""
        return TransientError(
            f"{self.endpoint}: connection refused", code="Connection", endpoint=self.endpoint
        )

    def versions(self, bucket: str, key: str) -> list[Version]:
        """A key's versions and delete markers, newest first (for assertions)."""
        return list(self.buckets[bucket].get(key, []))

    def live(self, bucket: str) -> dict[str, bytes]:
        """Key -> content of every key whose latest version is not a delete marker."""
        return {
            k: vs[0].data
            for k, vs in sorted(self.buckets[bucket].items())
            if not vs[0].is_delete_marker
        }

    async def _hook(self, call: Call) -> None:
        self.calls.append(call)
        if self.hook is not None:
            await self.hook(call)

    async def _enter(self, call: Call) -> dict[str, list[Version]]:
        await self._hook(call)
        if call.bucket not in self.buckets:
            raise _error(call, 404, "NoSuchBucket")
        return self.buckets[call.bucket]

    def _find(self, keys: dict[str, list[Version]], call: Call) -> Version:
        """The asked version (latest when none); a delete marker is not found, as on S3."""
        versions, wanted = keys.get(call.key, []), call.version_id.replace("null", "")
        found = [v for v in versions if v.version_id == wanted] if wanted else versions[:1]
        if not found or found[0].is_delete_marker:
            raise _error(call, 404, "NoSuchVersion" if wanted else "NoSuchKey")
        return found[0]

    def _add(
        self,
        keys: dict[str, list[Version]],
        key: str,
        data: bytes = b"",
        etag: str = "",
        headers: dict[str, str] | None = None,
        marker: bool = False,
    ) -> Version:
        """A new latest version: standard headers, user metadata and tags from `headers`."""
        sent = {k.lower(): v for k, v in (headers or {}).items()}
        version = Version(key, uuid.uuid4().hex, float(int(self.clock())), data, etag)
        version.is_delete_marker = marker
        if not marker:
            version.headers = {name: sent[name] for name in COPIED_HEADERS if name in sent}
            version.headers.setdefault("content-type", DEFAULT_TYPE)
            version.metadata = {k[11:]: v for k, v in sent.items() if k.startswith("x-amz-meta-")}
            version.tags = dict(parse_qsl(sent.get("x-amz-tagging", ""), keep_blank_values=True))
        keys.setdefault(key, []).insert(0, version)
        return version

    async def list_buckets(self) -> list[str]:
        await self._hook(Call("list_buckets"))
        return sorted(self.buckets)

    async def list_versions(
        self, bucket: str, prefix: str = "", key_marker: str = "", page_size: int = 1000
    ) -> AsyncGenerator[list[ListedVersion], None]:
        """Taken whole at the first page (a server lists each page anew); one call a page."""
        call = Call("list_versions", bucket, prefix)
        keys = await self._enter(call)
        listed = [
            ListedVersion(
                k, v.version_id, i == 0, v.is_delete_marker, v.last_modified, len(v.data), v.etag
            )
            for k in sorted(keys)
            if k.startswith(prefix) and k > key_marker
            for i, v in enumerate(keys[k])
        ]
        for start in range(0, len(listed), page_size):
            if start:
                await self._enter(call)
            yield listed[start : start + page_size]

    @asynccontextmanager
    async def get(
        self,
        bucket: str,
        key: str,
        version_id: str = "",
        byte_range: tuple[int, int] | None = None,
        if_match: str = "",
    ) -> AsyncIterator[tuple[ObjectHead, _Reader]]:
        call = Call("get", bucket, key, version_id)
        version = self._find(await self._enter(call), call)
        if if_match and if_match != version.etag:
            raise _error(call, 412, "PreconditionFailed")
        head, data = version.head(), version.data
        if byte_range is not None:
            data = data[byte_range[0] : byte_range[1] + 1]
            head = replace(head, size=len(data))
        yield head, _Reader(data, self, Call("read", bucket, key, version_id))

    async def head(self, bucket: str, key: str, version_id: str = "") -> ObjectHead:
        call = Call("head", bucket, key, version_id)
        return self._find(await self._enter(call), call).head()

    async def put(
        self, bucket: str, key: str, body: Body, headers: dict[str, str]
    ) -> tuple[str, str]:
        call = Call("put", bucket, key)
        keys = await self._enter(call)
        data = await _received(call, body, headers)
        version = self._add(keys, key, data, hashlib.md5(data).hexdigest(), headers)
        return version.version_id, version.etag

    async def create_multipart(self, bucket: str, key: str, headers: dict[str, str]) -> str:
        await self._enter(Call("create_multipart", bucket, key))
        upload = uuid.uuid4().hex
        self.uploads[upload] = _Upload(key, dict(headers))
        return upload

    async def upload_part(
        self, bucket: str, key: str, upload_id: str, number: int, body: Body, md5: str, length: int
    ) -> str:
        call = Call("upload_part", bucket, key)
        await self._enter(call)
        upload = self._upload(call, upload_id)
        sent = {"content-length": str(length), **({"content-md5": md5} if md5 else {})}
        data = await _received(call, body, sent)
        upload.parts[number] = data
        return f'"{hashlib.md5(data).hexdigest()}"'

    async def complete_multipart(
        self, bucket: str, key: str, upload_id: str, etags: list[str]
    ) -> tuple[str, str]:
        call = Call("complete_multipart", bucket, key)
        keys = await self._enter(call)
        upload = self._upload(call, upload_id)
        parts = [upload.parts.get(n, b"") for n in range(1, len(etags) + 1)]
        if [hashlib.md5(p).hexdigest() for p in parts] != [e.strip('"') for e in etags]:
            raise _error(call, 400, "InvalidPart")
        if any(len(p) < MIN_PART for p in parts[:-1]):
            raise _error(call, 400, "EntityTooSmall")
        del self.uploads[upload_id]
        digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
        etag = f"{digest}-{len(parts)}"
        version = self._add(keys, key, b"".join(parts), etag, upload.headers)
        return version.version_id, etag

    async def abort_multipart(self, bucket: str, key: str, upload_id: str) -> None:
        call = Call("abort_multipart", bucket, key)
        await self._enter(call)
        self._upload(call, upload_id)
        del self.uploads[upload_id]

    async def pending_uploads(self, bucket: str, key: str) -> dict[str, int]:
        await self._enter(Call("pending_uploads", bucket, key))
        return {
            upload_id: sum(map(len, upload.parts.values()))
            for upload_id, upload in self.uploads.items()
            if upload.key == key
        }

    def _upload(self, call: Call, upload_id: str) -> _Upload:
        upload = self.uploads.get(upload_id)
        if upload is None or upload.key != call.key:
            raise _error(call, 404, "NoSuchUpload")
        return upload

    async def delete(self, bucket: str, key: str, version_id: str = "") -> tuple[str, bool]:
        keys = await self._enter(Call("delete", bucket, key, version_id))
        if not version_id:
            marker = self._add(keys, key, marker=True)
            return marker.version_id, True
        versions = keys.get(key, [])
        gone = next((v for v in versions if v.version_id == version_id), None)
        if gone is None:
            return version_id, False  # as SeaweedFS: an unknown version deletes fine
        versions.remove(gone)
        if not versions:
            del keys[key]
        return version_id, gone.is_delete_marker

    async def get_tags(self, bucket: str, key: str, version_id: str = "") -> dict[str, str]:
        call = Call("get_tags", bucket, key, version_id)
        return dict(self._find(await self._enter(call), call).tags)

    async def put_tags(self, bucket: str, key: str, version_id: str, tags: dict[str, str]) -> None:
        call = Call("put_tags", bucket, key, version_id)
        self._find(await self._enter(call), call).tags = dict(tags)


def _what(call: Call) -> str:
    return f"{call.op} {call.bucket}/{call.key}"


def _error(call: Call, status: int, code: str) -> MirrorlineError:
    # A HEAD answer has no body: a client sees the status only (a 404 is then NotFound).
    return classify(status, "" if call.op == "head" else code, "", _what(call))


async def _received(call: Call, body: Body, headers: dict[str, str]) -> bytes:
    """The body as sent, checked against its Content-Length and Content-MD5."""
    data = body if isinstance(body, bytes) else b"".join([bytes(c) async for c in body])
    sent = {k.lower(): v for k, v in headers.items()}
    if "content-length" in sent and int(sent["content-length"]) != len(data):
        raise _error(call, 400, "IncompleteBody")
    md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
    if sent.get("content-md5", md5) != md5:
        raise _error(call, 400, "BadDigest")
    return data
