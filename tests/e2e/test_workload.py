"""The seeded workload: the same plan for the same seed, carried out on a real store at a rate."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from engine.demo.events import minio_record
from engine.demo.mix import KiB, Kind, MiB, Mix, Op, Planner, SizeClass
from engine.demo.seaweed import SeaweedServer
from engine.demo.workload import Workload, Write
from engine.errors import UserError
from engine.s3.client import S3Client
from engine.service.webhook import parse
from tests.conftest import client_for, make_bucket

_numbers = itertools.count(1)


def fingerprint(op: Op) -> tuple[object, ...]:
    """Everything an operation does, its contents by hash."""
    body = hashlib.sha256(op.body()).hexdigest() if op.writes else ""
    return (op.index, op.kind, op.key, op.size, op.content_type, op.tags, op.metadata, body)


# Small objects, a rare multipart of two parts: quick to write, every kind present.
TEST_MIX = Mix(
    sizes=(SizeClass(0, 0, 0.1), SizeClass(1, 8 * KiB, 0.85), SizeClass(6 * MiB, 6 * MiB, 0.05)),
    multipart_from=5 * MiB,
    part_size=5 * MiB,
)


def test_the_same_seed_plans_the_same_operations() -> None:
    first = [fingerprint(op) for op in itertools.islice(Planner(42, TEST_MIX), 300)]
    again = [fingerprint(op) for op in itertools.islice(Planner(42, TEST_MIX), 300)]
    other = [fingerprint(op) for op in itertools.islice(Planner(43, TEST_MIX), 300)]
    assert first == again
    assert first != other


def test_the_default_mix_holds_every_kind_and_only_acts_on_live_keys() -> None:
    live: set[str] = set()
    kinds: Counter[Kind] = Counter()
    sizes, keys = [], []
    mix = Mix()
    for op in itertools.islice(Planner(7, mix), 3000):
        kinds[op.kind] += 1
        if op.kind is Kind.CREATE:
            assert op.key not in live
            live.add(op.key)
            keys.append(op.key)
        else:
            assert op.key in live, f"{op.kind} of {op.key!r}, which is not live"
        if op.kind is Kind.DELETE:
            live.discard(op.key)
        if op.writes:
            sizes.append(op.size)
    assert set(kinds) == set(Kind)
    assert 0 in sizes and max(sizes) >= mix.multipart_from
    assert any(" " in k for k in keys) and any(not k.isascii() for k in keys)
    assert not any("//" in k or "/./" in k or "/../" in k or k.endswith("/") for k in keys)
    assert all(k.startswith(mix.prefix) for k in keys)


def test_a_mix_that_makes_no_sense_is_one_clear_error() -> None:
    with pytest.raises(UserError, match="parts are at least 5 MiB"):
        Mix(part_size=MiB)
    with pytest.raises(UserError, match="size class"):
        Mix(sizes=(SizeClass(10, 1, 1.0),))
    with pytest.raises(UserError, match="rate"):
        Workload(S3Client("http://127.0.0.1:1", "a", "b"), "bucket", 1, rate=-1)


def test_a_write_becomes_a_minio_event_the_engine_reads() -> None:
    op = Op(3, Kind.CREATE, "load/with spaces/naïve café 000003.txt", size=12)
    (record,) = parse({"Records": [minio_record("bkt", Write(op, "v1", 1_800_000_000.5, "e"))]})
    assert (record.event, record.bucket, record.key) == ("s3:ObjectCreated:Put", "bkt", op.key)
    assert (record.version_id, record.size, record.etag, record.at) == ("v1", 12, "e", 1.8e9 + 0.5)


@pytest.fixture
async def source(
    servers: tuple[SeaweedServer, SeaweedServer],
) -> AsyncIterator[tuple[S3Client, str]]:
    server = servers[0]
    bucket = make_bucket(client_for(server), f"workload-{next(_numbers)}")
    client = S3Client(server.endpoint, server.access_key, server.secret_key)
    yield client, bucket
    await client.close()


async def holds(client: S3Client, bucket: str, workload: Workload) -> None:
    """The store holds what the accepted operations say, version for version, byte for byte."""
    done = sorted(workload.writes, key=lambda w: w.op.index)
    stats = workload.stats
    listed = [v async for page in client.list_versions(bucket) for v in page]
    markers = [v for v in listed if v.is_delete_marker]
    assert len(markers) == stats.deleted
    assert len(listed) - len(markers) == stats.written + stats.overwritten
    last = {w.op.key: w for w in done}  # the last operation on each key
    latest: dict[str, Write] = {}  # live key -> the write whose version is current
    for write in done:
        if write.op.writes:
            latest[write.op.key] = write
        elif write.op.kind is Kind.DELETE:
            latest.pop(write.op.key, None)
    assert {v.key for v in listed if v.is_latest and not v.is_delete_marker} == set(latest)
    for key, write in latest.items():
        async with client.get(bucket, key) as (head, stream):
            assert hashlib.sha256(await stream.read()).digest() == (
                hashlib.sha256(write.op.body()).digest()
            ), key
        assert head.version_id == write.version_id
        assert head.metadata.get("app") == dict(write.op.metadata).get("app")
        if write.op.size >= workload.mix.multipart_from:
            assert head.etag.endswith("-2")
        if last[key].op.kind is Kind.RETAG:
            assert await client.get_tags(bucket, key) == dict(last[key].op.tags)


async def test_the_store_ends_up_holding_exactly_the_plan(source: tuple[S3Client, str]) -> None:
    client, bucket = source
    heard: list[Write] = []
    workload = Workload(client, bucket, seed=11, rate=200, mix=TEST_MIX, on_write=heard.append)
    await workload.run(ops=120)
    stats = workload.stats
    assert stats.errors == 0, stats.last_error
    done = sorted(workload.writes, key=lambda w: w.op.index)
    planned = list(itertools.islice(Planner(11, TEST_MIX), 120))
    assert [w.op for w in done] == planned and sorted(heard, key=lambda w: w.op.index) == done
    assert min(stats.written, stats.overwritten, stats.deleted, stats.retagged) > 0
    assert stats.bytes == sum(op.size for op in planned if op.writes)
    assert any(op.size >= TEST_MIX.multipart_from for op in planned), "a multipart write"
    assert any(op.size == 0 for op in planned if op.writes), "a zero-byte write"
    assert any(op.kind is Kind.RETAG for op in planned[-40:]), "a retag late in the plan"
    await holds(client, bucket, workload)


# Few keys, sizes far apart, and fast: operations on one key overlap unless they wait.
CHURN = Mix(
    create=0.1,
    overwrite=0.5,
    delete=0.15,
    retag=0.25,
    sizes=(SizeClass(1, KiB, 0.5), SizeClass(512 * KiB, MiB, 0.5)),
)


async def test_operations_on_one_key_run_in_plan_order(source: tuple[S3Client, str]) -> None:
    client, bucket = source
    workload = Workload(client, bucket, seed=2, rate=1000, mix=CHURN, concurrency=16)
    await workload.run(ops=200)
    assert workload.stats.errors == 0, workload.stats.last_error
    await holds(client, bucket, workload)


async def test_the_rate_holds_and_follows_set_rate(source: tuple[S3Client, str]) -> None:
    client, bucket = source
    small = Mix(sizes=(SizeClass(1, 2 * KiB, 1.0),))
    workload = Workload(client, bucket, seed=3, rate=40, mix=small)
    running = asyncio.create_task(workload.run())
    # The windows below are measured, not waited on: the rate is what is under test.
    started = time.time()
    await asyncio.sleep(3.5)
    workload.set_rate(80)
    switched = time.time()
    await asyncio.sleep(3.5)
    ended = time.time()
    workload.stop()
    await running

    def rate_between(start: float, end: float) -> float:
        accepted = [w for w in workload.writes if start <= w.accepted_at < end]
        return len(accepted) / (end - start)

    first = rate_between(started + 0.5, switched)
    second = rate_between(switched + 0.5, ended)
    print(f"workload rate: asked 40 then 80 ops/s, held {first:.1f} then {second:.1f}")
    assert 36 <= first <= 44
    assert 72 <= second <= 88
    assert workload.stats.errors == 0
