"""Large objects streamed from a real SeaweedFS source into a real SeaweedFS target.

The target checks every streamed byte (Content-MD5 from the source ETag, or a
CRC32 trailer): these tests prove it does, that the copy is exact in both the
one-PUT and the multipart shape, and that a stream that breaks or carries wrong
bytes leaves nothing on the target.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from minio import Minio

from engine.demo.seaweed import SeaweedServer
from engine.errors import MirrorlineError, TransientError
from engine.model import Op, Outcome, Task
from engine.policy import Policy
from engine.replication.budget import ByteBudget
from engine.replication.transfer import TransferContext, execute
from engine.s3 import ObjectHead, Stream, chunked
from engine.s3.client import S3Client
from tests.conftest import client_for, make_bucket

MiB = 1024 * 1024
PART = 5 * MiB


class Faulty:
    """A real source whose GET bodies break off, or turn one byte, after `after` bytes:
    what a dropped link or a flipped bit does to a stream in flight."""

    def __init__(self, store: S3Client, after: int, corrupt: bool = False) -> None:
        self._store, self._after, self._corrupt = store, after, corrupt
        self.endpoint = store.endpoint

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @asynccontextmanager
    async def get(self, *args: Any, **kwargs: Any) -> AsyncIterator[tuple[ObjectHead, Stream]]:
        async with self._store.get(*args, **kwargs) as (head, body):
            yield head, _Broken(body, self._after, self._corrupt)


class _Broken:
    def __init__(self, body: Stream, after: int, corrupt: bool) -> None:
        self._body, self._left, self._corrupt = body, after, corrupt

    async def readexactly(self, n: int) -> bytes:
        return self._passed(await self._body.readexactly(n))

    async def read_some(self, n: int) -> bytes:
        return self._passed(bytes(await self._body.read_some(n)))

    def _passed(self, piece: bytes) -> bytes:
        self._left -= len(piece)
        if self._left <= 0:
            if not self._corrupt:
                raise ConnectionResetError("source: connection reset mid-body")
            self._left, piece = 1 << 62, bytes([piece[0] ^ 1]) + piece[1:]
        return piece

    def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        raise NotImplementedError


@pytest.fixture
def stores(servers: tuple[SeaweedServer, SeaweedServer]) -> Iterator[tuple[Minio, Minio, str]]:
    source, target = servers
    bucket = f"stream-{uuid.uuid4().hex[:8]}"
    src, dst = client_for(source), client_for(target)
    make_bucket(src, bucket)
    make_bucket(dst, bucket)
    yield src, dst, bucket


async def copy(
    servers: tuple[SeaweedServer, SeaweedServer],
    bucket: str,
    key: str,
    version: str,
    size: int,
    *,
    multipart_from: int,
    fault: tuple[int, bool] | None = None,
    budget: ByteBudget | None = None,
) -> Any:
    source, target = servers
    clients = [S3Client(s.endpoint, s.access_key, s.secret_key) for s in (source, target)]
    src_store: Any = clients[0] if fault is None else Faulty(clients[0], *fault)
    ctx = TransferContext(
        policy=Policy("p", 1, "a", bucket, "b", bucket),
        source=src_store,
        target=clients[1],
        source_origin=f"a/{bucket}",
        target_origin=f"b/{bucket}",
        part_size=PART,
        part_budget=budget or ByteBudget(2 * PART),  # two parts at once: the third waits
        stream_from=MiB,
        multipart_from=multipart_from,
    )
    moved: list[int] = []
    ctx.on_bytes = moved.append
    task = Task(policy="p", key=key, version_id=version, op=Op.PUT, size=size)
    try:
        done = await execute(task, ctx)
    finally:
        for client in clients:
            await client.close()
    assert sum(moved) == size, "every byte counted as it went"
    assert ctx.part_budget.free == ctx.part_budget.capacity, "the budget is whole again"
    return done


def put(
    client: Minio, bucket: str, key: str, data: bytes, part_size: int = 64 * MiB, **kw: Any
) -> str:
    """One PUT (a plain MD5 ETag) unless `part_size` is below the object's size."""
    done = client.put_object(bucket, key, io.BytesIO(data), len(data), part_size=part_size, **kw)
    return str(done.version_id)


def read(client: Minio, bucket: str, key: str) -> bytes:
    response = client.get_object(bucket, key)
    try:
        return response.read(decode_content=False)
    finally:
        response.close()
        response.release_conn()


def uploads_left(client: Minio, bucket: str) -> list[str]:
    found = client._list_multipart_uploads(bucket)  # minio has no public call
    return [u.object_name for u in found.uploads]


async def test_a_plain_object_streams_in_one_put_checked_against_the_source_md5(
    servers: tuple[SeaweedServer, SeaweedServer], stores: tuple[Minio, Minio, str]
) -> None:
    src, dst, bucket = stores
    data = os.urandom(3 * MiB + 17)
    version = await asyncio.to_thread(put, src, bucket, "one.bin", data)
    done = await copy(servers, bucket, "one.bin", version, len(data), multipart_from=8 * MiB)
    assert done.outcome is Outcome.REPLICATED and done.bytes == len(data)
    stat = await asyncio.to_thread(dst.stat_object, bucket, "one.bin")
    assert stat.etag == hashlib.md5(data).hexdigest(), "one PUT, its ETag the source's MD5"
    assert await asyncio.to_thread(read, dst, bucket, "one.bin") == data


async def test_a_multipart_source_streams_with_a_crc_trailer(
    servers: tuple[SeaweedServer, SeaweedServer], stores: tuple[Minio, Minio, str]
) -> None:
    src, dst, bucket = stores
    data = os.urandom(PART + 3 * MiB)
    version = await asyncio.to_thread(put, src, bucket, "mp.bin", data, PART)
    assert "-" in (await asyncio.to_thread(src.stat_object, bucket, "mp.bin")).etag
    done = await copy(servers, bucket, "mp.bin", version, len(data), multipart_from=16 * MiB)
    assert done.outcome is Outcome.REPLICATED
    stat = await asyncio.to_thread(dst.stat_object, bucket, "mp.bin")
    assert "-" not in stat.etag, "one streamed PUT, not parts"
    assert "Content-Encoding" not in stat.metadata, "the aws-chunked framing is not stored"
    assert await asyncio.to_thread(read, dst, bucket, "mp.bin") == data


async def test_an_encoded_object_keeps_its_content_encoding(
    servers: tuple[SeaweedServer, SeaweedServer], stores: tuple[Minio, Minio, str]
) -> None:
    """The framing is not an encoding of the object: gzip stays gzip (and no aws-chunked)."""
    src, dst, bucket = stores
    data = os.urandom(PART + 3 * MiB)
    gzip = {"Content-Encoding": "gzip"}
    version = await asyncio.to_thread(put, src, bucket, "gz.bin", data, PART, metadata=gzip)
    done = await copy(servers, bucket, "gz.bin", version, len(data), multipart_from=16 * MiB)
    assert done.outcome is Outcome.REPLICATED
    stat = await asyncio.to_thread(dst.stat_object, bucket, "gz.bin")
    assert stat.metadata.get("Content-Encoding") == "gzip"
    assert await asyncio.to_thread(read, dst, bucket, "gz.bin") == data


async def test_a_large_object_goes_in_ranged_streamed_parts(
    servers: tuple[SeaweedServer, SeaweedServer], stores: tuple[Minio, Minio, str]
) -> None:
    src, dst, bucket = stores
    data = os.urandom(2 * PART + MiB)
    version = await asyncio.to_thread(put, src, bucket, "big.bin", data)
    done = await copy(servers, bucket, "big.bin", version, len(data), multipart_from=PART)
    assert done.outcome is Outcome.REPLICATED
    stat = await asyncio.to_thread(dst.stat_object, bucket, "big.bin")
    digests = b"".join(hashlib.md5(data[i : i + PART]).digest() for i in range(0, len(data), PART))
    assert stat.etag == f"{hashlib.md5(digests).hexdigest()}-3", "three parts of PART bytes"
    assert await asyncio.to_thread(read, dst, bucket, "big.bin") == data
    assert await asyncio.to_thread(uploads_left, dst, bucket) == []


@pytest.mark.parametrize("multipart_from", [64 * MiB, PART], ids=["one-put", "multipart"])
async def test_a_stream_that_breaks_off_leaves_no_object_and_blames_the_source(
    servers: tuple[SeaweedServer, SeaweedServer],
    stores: tuple[Minio, Minio, str],
    multipart_from: int,
) -> None:
    src, dst, bucket = stores
    data = os.urandom(2 * PART + MiB)
    version = await asyncio.to_thread(put, src, bucket, "cut.bin", data)
    budget = ByteBudget(2 * PART)
    with pytest.raises(TransientError) as error:
        await copy(
            servers,
            bucket,
            "cut.bin",
            version,
            len(data),
            multipart_from=multipart_from,
            fault=(3 * MiB, False),
            budget=budget,
        )
    assert error.value.retryable and error.value.endpoint == servers[0].endpoint
    assert budget.free == budget.capacity, "no budget lost to the failed parts"
    listed = await asyncio.to_thread(lambda: list(dst.list_objects(bucket, include_version=True)))
    assert listed == [], "no partial object, no version"
    assert await asyncio.to_thread(uploads_left, dst, bucket) == [], "the upload was aborted"


async def test_a_flipped_byte_is_refused_by_the_target_and_retried(
    servers: tuple[SeaweedServer, SeaweedServer], stores: tuple[Minio, Minio, str]
) -> None:
    """One PUT carries the source's MD5: a byte turned on the way is caught end to end."""
    src, dst, bucket = stores
    data = os.urandom(2 * PART + MiB)
    version = await asyncio.to_thread(put, src, bucket, "rot.bin", data)
    with pytest.raises(TransientError, match="does not match the source ETag") as error:
        await copy(
            servers,
            bucket,
            "rot.bin",
            version,
            len(data),
            multipart_from=64 * MiB,
            fault=(3 * MiB, True),
        )
    assert error.value.retryable
    listed = await asyncio.to_thread(lambda: list(dst.list_objects(bucket, include_version=True)))
    assert listed == []


async def test_the_target_checks_the_crc_trailer_of_a_streamed_part(
    servers: tuple[SeaweedServer, SeaweedServer], stores: tuple[Minio, Minio, str]
) -> None:
    """What a part's CRC32 trailer buys: bytes changed after it was computed are refused."""
    _, dst, bucket = stores
    target = servers[1]
    client = S3Client(target.endpoint, target.access_key, target.secret_key)
    data = os.urandom(MiB + 5)

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(data), chunked.STREAM_CHUNK):
            yield data[start : start + chunked.STREAM_CHUNK]

    async def turned() -> AsyncIterator[bytes]:
        async for frame in chunked.framed(pieces(), len(data)):
            yield frame.replace(data[:16], bytes([data[0] ^ 1]) + data[1:16], 1)

    try:
        upload = await client.create_multipart(bucket, "crc.bin", {})
        params = {"partNumber": "1", "uploadId": upload}
        with pytest.raises(MirrorlineError) as refused:
            async with client.request(
                "PUT",
                bucket,
                "crc.bin",
                params,
                chunked.headers_for(len(data)),
                turned(),
                payload_hash=chunked.STREAMING_TRAILER,
            ):
                pass
        assert refused.value.code in ("InvalidDigest", "BadDigest")
        etag = await client.upload_part(bucket, "crc.bin", upload, 1, pieces(), "", len(data))
        assert etag.strip('"') == hashlib.md5(data).hexdigest(), "the same part, untouched"
        await client.abort_multipart(bucket, "crc.bin", upload)
    finally:
        await client.close()
    assert await asyncio.to_thread(uploads_left, dst, bucket) == []
