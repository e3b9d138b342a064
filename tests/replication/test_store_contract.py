"""What replication relies on of a store, run against MemoryStore and a real SeaweedFS.

One suite, two classes (the saq TestQueue pattern): TestMemoryStore runs in the fast
layer; TestSeaweedStore (marked s3 by the `servers` fixture) proves that MemoryStore
behaves as the real server does, so logic tests on MemoryStore prove logic, not a fake.
The signature check is the `var _ ReplicaClient = (*Client)(nil)` of this project.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import itertools
import socket
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

from engine.demo.seaweed import SeaweedServer
from engine.errors import NotFoundError, PermanentError, TransientError
from engine.s3 import ListedVersion, ObjectStore
from engine.s3.client import S3Client
from engine.s3.memory import MIN_PART, MemoryStore
from engine.s3.origin import COPIED_HEADERS
from tests.conftest import client_for, make_bucket

_numbers = itertools.count(1)
STANDARD = {
    "content-type": "text/x-test",
    "cache-control": "max-age=60",
    "content-disposition": 'attachment; filename="a.txt"',
    "content-encoding": "identity",
    "content-language": "fr",
    "expires": "Thu, 01 Dec 2030 16:00:00 GMT",
}


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


if TYPE_CHECKING:  # the static twin of the test below (litestream's `var _ ReplicaClient`)

    def _conforms(client: S3Client, memory: MemoryStore) -> tuple[ObjectStore, ObjectStore]:
        return client, memory


def members(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(value)
        for name, value in vars(cls).items()
        if callable(value) and not name.startswith("_")
    }


@pytest.mark.parametrize("store", [S3Client, MemoryStore])
def test_both_stores_implement_the_protocol(store: type) -> None:
    """Every Protocol method exists with the same parameters, defaults and async-ness."""
    wanted = members(ObjectStore)
    assert set(wanted) >= {"list_versions", "get", "put", "delete", "get_tags", "put_tags"}
    for name, signature in wanted.items():
        impl = getattr(store, name, None)
        assert impl is not None, f"{store.__name__} lacks {name}"
        got = inspect.signature(impl)
        assert [(p.name, p.kind, p.default) for p in got.parameters.values()] == [
            (p.name, p.kind, p.default) for p in signature.parameters.values()
        ], f"{store.__name__}.{name}{got} is not ObjectStore.{name}{signature}"
        assert inspect.iscoroutinefunction(impl) == inspect.iscoroutinefunction(
            getattr(ObjectStore, name)
        ), name
    assert "endpoint" in ObjectStore.__annotations__
    assert isinstance(MemoryStore().endpoint, str)


async def test_the_client_names_its_endpoint_when_it_cannot_reach_it() -> None:
    """The dispatcher marks a link offline by this endpoint (MemoryStore.unreachable too)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = S3Client(f"http://127.0.0.1:{port}", "ak", "sk")
    try:
        with pytest.raises(TransientError) as error:
            await client.list_buckets()
    finally:
        await client.close()
    assert error.value.link_down and error.value.endpoint == client.endpoint
    memory = MemoryStore()
    assert (memory.unreachable().link_down, memory.unreachable().endpoint) == (
        True,
        memory.endpoint,
    )


async def listing(store: ObjectStore, bucket: str, **kwargs: object) -> list[list[ListedVersion]]:
    return [page async for page in store.list_versions(bucket, **kwargs)]  # type: ignore[arg-type]


async def body(store: ObjectStore, bucket: str, key: str, version_id: str = "") -> bytes:
    async with store.get(bucket, key, version_id) as (head, stream):
        return await stream.readexactly(head.size) if head.size else b""


class StoreContract:
    """Each test gets an empty versioned bucket `bucket` on `store`."""

    @pytest.fixture
    def bucket(self) -> str:
        return f"contract-{next(_numbers)}"

    @pytest.fixture
    async def store(self, bucket: str) -> AsyncIterator[ObjectStore]:
        raise NotImplementedError
        yield

    async def test_a_put_reads_back_with_its_headers_metadata_and_tags(
        self, store: ObjectStore, bucket: str
    ) -> None:
        data = b"hello, replica"
        headers = {
            **STANDARD,
            "x-amz-meta-Owner": "Ops",
            "x-amz-tagging": "team=blue&note=x%20y",
            "Content-MD5": md5_b64(data),
            "Content-Length": str(len(data)),
        }
        version, etag = await store.put(bucket, "k", data, headers)
        assert etag == hashlib.md5(data).hexdigest()
        head = await store.head(bucket, "k")
        assert (head.version_id, head.etag, head.size, head.tag_count) == (version, etag, 14, 2)
        assert head.metadata == {"owner": "Ops"}
        assert {name: head.headers.get(name) for name in COPIED_HEADERS} == STANDARD
        assert await body(store, bucket, "k") == data
        async with store.get(bucket, "k", version) as (got, stream):
            assert got.version_id == version
            assert b"".join([c async for c in stream.iter_chunked(4)]) == data
        assert await store.get_tags(bucket, "k") == {"team": "blue", "note": "x y"}
        ((listed,),) = await listing(store, bucket)
        assert (listed.version_id, listed.etag, listed.size, listed.is_latest) == (
            version,
            etag,
            14,
            True,
        )
        assert listed.last_modified == head.last_modified == int(head.last_modified)
        plain = await store.put(bucket, "plain", b"x", {})
        assert (await store.head(bucket, "plain")).headers.get("content-type"), plain

    async def test_listing_pages_keys_in_byte_order_newest_version_first(
        self, store: ObjectStore, bucket: str
    ) -> None:
        written: dict[str, list[str]] = {}
        for key in ["b", "a/x", "ü", "a", "Z", "b"]:
            version, _ = await store.put(bucket, key, key.encode(), {})
            written.setdefault(key, []).insert(0, version)
        pages = await listing(store, bucket, page_size=2)
        assert [len(p) for p in pages] == [2, 2, 2]
        entries = [(v.key, v.version_id, v.is_latest) for page in pages for v in page]
        assert entries == [
            (key, version, n == 0)
            for key in sorted(written)
            for n, version in enumerate(written[key])
        ]
        assert pages[1][-1].key == pages[2][0].key == "b", "a key's versions span two pages"
        after = await listing(store, bucket, key_marker="a/x")
        assert [v.key for page in after for v in page] == ["b", "b", "ü"]
        prefixed = await listing(store, bucket, prefix="a")
        assert [v.key for page in prefixed for v in page] == ["a", "a/x"]
        assert await listing(store, bucket, prefix="nothing/") == []

    async def test_a_delete_marker_hides_the_key_until_it_is_removed(
        self, store: ObjectStore, bucket: str
    ) -> None:
        first, _ = await store.put(bucket, "k", b"v1", {"x-amz-tagging": "a=1"})
        marker, is_marker = await store.delete(bucket, "k")
        assert is_marker and marker != first
        for missing in (
            store.head(bucket, "k"),
            body(store, bucket, "k"),
            store.get_tags(bucket, "k"),
            store.head(bucket, "k", marker),
        ):
            with pytest.raises(NotFoundError):
                await missing
        assert await body(store, bucket, "k", first) == b"v1"
        ((latest, old),) = await listing(store, bucket)
        assert (latest.version_id, latest.is_delete_marker, latest.is_latest, latest.size) == (
            marker,
            True,
            True,
            0,
        )
        assert (old.version_id, old.is_delete_marker, old.is_latest) == (first, False, False)
        assert await store.delete(bucket, "k", marker) == (marker, True)
        assert (await store.head(bucket, "k")).version_id == first
        never, is_marker = await store.delete(bucket, "never-written")
        listed = await listing(store, bucket, prefix="never")
        assert is_marker and [v.version_id for page in listed for v in page] == [never]

    async def test_a_version_delete_removes_it_for_good_and_repeats_quietly(
        self, store: ObjectStore, bucket: str
    ) -> None:
        first, _ = await store.put(bucket, "k", b"v1", {})
        second, _ = await store.put(bucket, "k", b"v2", {})
        assert await store.delete(bucket, "k", first) == (first, False)
        assert [v.version_id for p in await listing(store, bucket) for v in p] == [second]
        assert await store.delete(bucket, "k", first) == (first, False)
        with pytest.raises(NotFoundError):
            await store.head(bucket, "k", first)
        assert await store.delete(bucket, "k", second) == (second, False)
        assert await listing(store, bucket) == []

    async def test_tags_belong_to_one_version_and_empty_removes_them(
        self, store: ObjectStore, bucket: str
    ) -> None:
        first, _ = await store.put(bucket, "k", b"v1", {"x-amz-tagging": "stage=draft"})
        second, _ = await store.put(bucket, "k", b"v2", {})
        await store.put_tags(bucket, "k", first, {"stage": "final", "owner": "qa"})
        assert await store.get_tags(bucket, "k", first) == {"stage": "final", "owner": "qa"}
        assert await store.get_tags(bucket, "k") == {}
        await store.put_tags(bucket, "k", second, {"x": "1"})
        assert (await store.head(bucket, "k")).tag_count == 1
        await store.put_tags(bucket, "k", second, {})
        assert await store.get_tags(bucket, "k", second) == {}
        assert (await store.head(bucket, "k")).tag_count == 0

    async def test_a_multipart_upload_appears_whole_at_complete(
        self, store: ObjectStore, bucket: str
    ) -> None:
        parts = [b"a" * MIN_PART, b"tail"]
        upload = await store.create_multipart(
            bucket, "mp", {"content-type": "text/mp", "x-amz-meta-kind": "big"}
        )
        etags = [
            await store.upload_part(bucket, "mp", upload, n, p, md5_b64(p), len(p))
            for n, p in enumerate(parts, 1)
        ]
        assert await listing(store, bucket) == [], "nothing shows before complete"
        version, etag = await store.complete_multipart(bucket, "mp", upload, etags)
        digest = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest()
        assert etag == f"{digest}-2"
        head = await store.head(bucket, "mp")
        assert (head.version_id, head.etag, head.size) == (version, etag, MIN_PART + 4)
        assert (head.headers["content-type"], head.metadata) == ("text/mp", {"kind": "big"})
        assert await body(store, bucket, "mp") == b"".join(parts)

    async def test_an_aborted_or_refused_upload_leaves_nothing(
        self, store: ObjectStore, bucket: str
    ) -> None:
        small = b"s" * 1024
        upload = await store.create_multipart(bucket, "mp", {})
        etag = await store.upload_part(bucket, "mp", upload, 1, small, md5_b64(small), 1024)
        await store.abort_multipart(bucket, "mp", upload)
        with pytest.raises(NotFoundError):
            await store.complete_multipart(bucket, "mp", upload, [etag])
        upload = await store.create_multipart(bucket, "mp", {})
        etags = [
            await store.upload_part(bucket, "mp", upload, n, small, md5_b64(small), 1024)
            for n in (1, 2)
        ]
        with pytest.raises(PermanentError) as refused:  # a first part under 5 MiB
            await store.complete_multipart(bucket, "mp", upload, etags)
        assert type(refused.value) is PermanentError
        with pytest.raises(PermanentError):
            await store.complete_multipart(bucket, "mp", upload, ['"' + "0" * 32 + '"'])
        await store.abort_multipart(bucket, "mp", upload)
        assert await listing(store, bucket) == []

    async def test_open_uploads_of_one_key_are_listed_with_their_bytes(
        self, store: ObjectStore, bucket: str
    ) -> None:
        """What a task run again after a crash asks: the dead run's uploads of its key."""
        part = b"p" * MIN_PART
        upload = await store.create_multipart(bucket, "mp", {})
        await store.upload_part(bucket, "mp", upload, 1, part, md5_b64(part), MIN_PART)
        await store.upload_part(bucket, "mp", upload, 2, b"tail", md5_b64(b"tail"), 4)
        empty = await store.create_multipart(bucket, "mp", {})
        longer = await store.create_multipart(bucket, "mp/longer", {})  # the prefix matches
        assert await store.pending_uploads(bucket, "mp") == {upload: MIN_PART + 4, empty: 0}
        for key, done in (("mp", upload), ("mp", empty), ("mp/longer", longer)):
            await store.abort_multipart(bucket, key, done)
        assert await store.pending_uploads(bucket, "mp") == {}

    async def test_errors_have_the_class_replication_decides_on(
        self, store: ObjectStore, bucket: str
    ) -> None:
        with pytest.raises(PermanentError) as bad:
            await store.put(bucket, "k", b"abc", {"Content-MD5": md5_b64(b"xyz")})
        assert type(bad.value) is PermanentError and not bad.value.retryable
        assert await listing(store, bucket) == []
        for missing in (store.head(bucket, "nope"), body(store, bucket, "nope")):
            with pytest.raises(NotFoundError):
                await missing
        # Tags onto a replica deleted since: a vanished object, which a tag sync skips.
        version, _ = await store.put(bucket, "tagged", b"t", {})
        await store.delete(bucket, "tagged", version)
        with pytest.raises(NotFoundError):
            await store.put_tags(bucket, "tagged", version, {"a": "b"})
        # A missing bucket is an operator's problem, not a vanished object...
        for gone in (store.put("no-such-bucket", "k", b"x", {}), listing(store, "no-such-bucket")):
            with pytest.raises(PermanentError) as error:
                await gone
            assert type(error.value) is PermanentError
        # ...except to a HEAD, whose 404 carries no code to tell the two apart.
        with pytest.raises(NotFoundError):
            await store.head("no-such-bucket", "k")
        assert bucket in await store.list_buckets()


class TestMemoryStore(StoreContract):
    @pytest.fixture
    async def store(self, bucket: str) -> AsyncIterator[ObjectStore]:
        yield MemoryStore(buckets=(bucket,))


class TestSeaweedStore(StoreContract):
    @pytest.fixture
    async def store(
        self, servers: tuple[SeaweedServer, SeaweedServer], bucket: str
    ) -> AsyncIterator[ObjectStore]:
        server = servers[0]
        make_bucket(client_for(server), bucket)
        client = S3Client(server.endpoint, server.access_key, server.secret_key)
        try:
            yield client
        finally:
            await client.close()
