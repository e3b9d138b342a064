"""The fault proxy: each fault against a real SeaweedFS (the engine through it: test_fault_network)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import statistics
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import pytest

from engine.demo.faults import Fault, FaultProxy
from engine.demo.framing import BodyMeter
from engine.demo.mix import KiB, MiB
from engine.demo.seaweed import SeaweedServer
from engine.errors import TransientError
from engine.s3.client import NS, S3Client
from tests.conftest import client_for, make_bucket

pytestmark = pytest.mark.faults
T = TypeVar("T")
_numbers = itertools.count(1)


# -- the request meter: where "mid-body" is ---------------------------------------------


def head(method: str, path: str, length: int) -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()


def cuts(stream: bytes, limit: int | None, chunk: int, armed: bool = True) -> int | None:
    """Feed `stream` in `chunk`-byte reads; the absolute offset of the cut, if any."""
    meter = BodyMeter(lambda target: armed)
    for start in range(0, len(stream), chunk):
        at = meter.feed(stream[start : start + chunk], limit)
        if at is not None:
            return start + at
    return None


@pytest.mark.parametrize("chunk", [1, 7, 100, 4096, 1 << 20])
def test_the_cut_lands_inside_the_first_body_longer_than_the_limit(chunk: int) -> None:
    small = head("PUT", "/b/small?x=1", 50) + b"s" * 50  # not longer than the limit: passes
    empty = head("GET", "/b/", 0)
    large_head = head("PUT", "/b/large?partNumber=1", 300)
    stream = small + empty + large_head + b"L" * 300
    offset = cuts(stream, 100, chunk)
    assert offset == len(small) + len(empty) + len(large_head) + 100


def test_a_body_of_exactly_the_limit_is_never_cut() -> None:
    stream = head("PUT", "/b/k", 100) + b"x" * 100 + head("PUT", "/b/k", 100) + b"y" * 100
    assert cuts(stream, 100, 37) is None
    assert cuts(stream, 99, 37) == len(head("PUT", "/b/k", 100)) + 99


def test_a_request_not_armed_passes_and_the_target_drops_the_query() -> None:
    seen: list[str] = []
    meter = BodyMeter(lambda target: seen.append(target) is not None)
    stream = head("PUT", "/b/k%20x?uploadId=1&partNumber=2", 10) + b"z" * 10
    assert meter.feed(stream, 5) is None
    assert seen == ["PUT /b/k%20x"]


def test_a_chunked_body_counts_as_the_rest_of_the_connection() -> None:
    chunked = b"PUT /b/k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert cuts(chunked + b"5\r\nhello\r\n" * 10, 20, 9) == len(chunked) + 20


def test_fault_state_says_what_is_on() -> None:
    proxy = FaultProxy("127.0.0.1", 1)
    assert proxy.state.fault is Fault.NONE and proxy.state.describe() == "healthy"
    before = time.time()
    proxy.delay(0.3)
    assert proxy.state.describe() == "delay 300 ms" and proxy.state.since >= before
    proxy.throttle(256 * KiB)
    assert proxy.state.describe() == "throttle 256 KiB/s"
    proxy.reset_after(1536 * KiB, repeat=True)
    assert proxy.state.describe() == "reset after 1.5 MiB (every request)"
    proxy.cut()
    assert proxy.state.fault is Fault.CUT
    proxy.heal()
    assert proxy.state.fault is Fault.NONE
    with pytest.raises(ValueError):
        proxy.throttle(0)


# -- each fault against a real store ------------------------------------------------------


async def until(check: Callable[[], T]) -> T:
    """`eventually` for a test that shares its event loop with the proxy (it must not block)."""
    async with asyncio.timeout(10):
        while not (result := check()):  # noqa: ASYNC110 - counters have no event to wait on
            await asyncio.sleep(0.02)
    return result


@pytest.fixture
def store(servers: tuple[SeaweedServer, SeaweedServer]) -> tuple[SeaweedServer, str]:
    target = servers[1]
    return target, make_bucket(client_for(target), f"faults-{next(_numbers)}")


@pytest.fixture
async def proxy(store: tuple[SeaweedServer, str]) -> AsyncIterator[FaultProxy]:
    fault_proxy = FaultProxy("127.0.0.1", store[0].port)
    await fault_proxy.start()
    yield fault_proxy
    await fault_proxy.stop()


def s3(server: SeaweedServer, port: int | None = None) -> S3Client:
    """A client for `server`, straight or (with a port) through the proxy."""
    endpoint = f"http://127.0.0.1:{port}" if port else server.endpoint
    return S3Client(endpoint, server.access_key, server.secret_key)


@pytest.fixture
async def clients(
    store: tuple[SeaweedServer, str], proxy: FaultProxy
) -> AsyncIterator[tuple[S3Client, S3Client]]:
    """(through the proxy, straight to the store)."""
    pair = s3(store[0], proxy.port), s3(store[0])
    yield pair
    for client in pair:
        await client.close()


async def versions(client: S3Client, bucket: str, key: str) -> list[tuple[str, int, bool]]:
    """(version id, size, is a delete marker) of every version of exactly `key`."""
    found = []
    async for page in client.list_versions(bucket, prefix=key):
        found += [(v.version_id, v.size, v.is_delete_marker) for v in page if v.key == key]
    return found


async def content(client: S3Client, bucket: str, key: str) -> bytes:
    async with client.get(bucket, key) as (_, stream):
        return await stream.read()


async def uploads_in_progress(client: S3Client, bucket: str) -> list[str]:
    async with client.request("GET", bucket, params={"uploads": ""}) as resp:
        root = ET.fromstring(await resp.read())
    return [el.findtext(NS + "Key") or "" for el in root.iter(NS + "Upload")]


async def test_traffic_passes_unchanged_and_is_counted(
    store: tuple[SeaweedServer, str], proxy: FaultProxy, clients: tuple[S3Client, S3Client]
) -> None:
    through, direct = clients
    body = os.urandom(3 * MiB)
    # SigV4 signs the Host header the client sends (the proxy's port); the store checks
    # the Host header it receives: the same bytes, so the signature holds.
    await through.put(store[1], "plain.bin", body, {})
    assert await content(direct, store[1], "plain.bin") == body
    assert await content(through, store[1], "plain.bin") == body
    counted = proxy.counters
    assert counted.connections >= 1 and counted.refused == counted.resets == 0
    assert 3 * MiB < counted.bytes_up < 3 * MiB + 16 * KiB
    assert 3 * MiB < counted.bytes_down < 3 * MiB + 16 * KiB


async def test_cut_drops_open_connections_refuses_new_ones_and_leaves_no_object(
    store: tuple[SeaweedServer, str], proxy: FaultProxy, clients: tuple[S3Client, S3Client]
) -> None:
    through, direct = clients
    proxy.throttle(256 * KiB)  # slow enough that the cut lands mid-upload
    upload = asyncio.create_task(through.put(store[1], "cut.bin", os.urandom(2 * MiB), {}))
    await until(lambda: proxy.counters.bytes_up > 300 * KiB)
    proxy.cut()
    with pytest.raises(TransientError) as dropped:
        await upload
    assert dropped.value.link_down
    assert proxy.counters.resets == 1
    with pytest.raises(TransientError):
        await through.list_buckets()  # a new connection: turned away
    assert proxy.counters.refused >= 1
    assert await until(lambda: proxy.counters.open == 0)
    assert await versions(direct, store[1], "cut.bin") == []


async def test_delay_adds_latency_each_way_without_capping_throughput(
    store: tuple[SeaweedServer, str], proxy: FaultProxy, clients: tuple[S3Client, S3Client]
) -> None:
    through, _ = clients

    async def head_bucket_seconds() -> float:
        started = time.perf_counter()
        await through.head_bucket(store[1])
        return time.perf_counter() - started

    await through.head_bucket(store[1])  # the connection is open: no connect in the numbers
    base = statistics.median([await head_bucket_seconds() for _ in range(5)])
    proxy.delay(0.3)
    delayed = statistics.median([await head_bucket_seconds() for _ in range(3)])
    added = delayed - base
    print(f"delay 300 ms each way: a round trip {base * 1000:.1f} -> {delayed * 1000:.0f} ms")
    assert 0.59 <= added <= 0.8, f"added {added:.3f}s"
    # Chunks are due 300 ms after they were read, not after the one before: 8 MiB
    # (32 reads or more) take about one delay more, not 32 delays more.
    started = time.perf_counter()
    await through.put(store[1], "delayed.bin", os.urandom(8 * MiB), {})
    elapsed = time.perf_counter() - started
    print(f"8 MiB PUT with 300 ms each way: {elapsed:.2f}s")
    assert elapsed < 3.0


async def test_throttle_caps_the_rate_shared_by_all_connections(
    store: tuple[SeaweedServer, str], proxy: FaultProxy
) -> None:
    rate = 512 * KiB
    uploaders = [s3(store[0], proxy.port) for _ in range(2)]  # two pools: two connections
    try:
        # The first write into a new bucket allocates a volume (up to a second): not the line.
        await uploaders[0].put(store[1], "warm", b"", {})
        proxy.throttle(rate)
        started = time.perf_counter()
        await asyncio.gather(
            *(c.put(store[1], f"t{n}", os.urandom(MiB), {}) for n, c in enumerate(uploaders))
        )
        up = 2 * MiB / (time.perf_counter() - started)
        started = time.perf_counter()
        assert len(await content(uploaders[0], store[1], "t0")) == MiB
        down = MiB / (time.perf_counter() - started)
    finally:
        for client in uploaders:
            await client.close()
    print(f"throttle 512 KiB/s: up {up / KiB:.0f} KiB/s (two connections), down {down / KiB:.0f}")
    assert 0.85 * rate <= up <= 1.15 * rate
    assert 0.85 * rate <= down <= 1.15 * rate
    assert proxy.counters.connections >= 2


async def test_reset_after_cuts_a_put_mid_body_and_leaves_no_partial_object(
    store: tuple[SeaweedServer, str], proxy: FaultProxy, clients: tuple[S3Client, S3Client]
) -> None:
    through, direct = clients
    bucket, body = store[1], os.urandom(4 * MiB)
    proxy.reset_after(MiB)
    sent_before = proxy.counters.bytes_up
    with pytest.raises(TransientError) as reset:
        await through.put(bucket, "r.bin", body, {})
    assert reset.value.link_down and proxy.counters.resets == 1
    # The store was sent the request head and exactly 1 MiB of the 4 MiB body.
    assert MiB < proxy.counters.bytes_up - sent_before < MiB + 4 * KiB
    assert await versions(direct, bucket, "r.bin") == []

    await through.put(bucket, "r.bin", body, {})  # each target is cut once: the retry lands
    ((_, size, marker),) = await versions(direct, bucket, "r.bin")
    assert size == len(body) and not marker
    assert hashlib.md5(await content(direct, bucket, "r.bin")).digest() == (
        hashlib.md5(body).digest()
    )

    proxy.reset_after(MiB, repeat=True)
    with pytest.raises(TransientError):
        await through.put(bucket, "r.bin", body, {})
    assert len(await versions(direct, bucket, "r.bin")) == 1
    await through.put(bucket, "small.bin", body[:MiB], {})  # not longer than N: passes
    assert await content(direct, bucket, "small.bin") == body[:MiB]
    assert proxy.counters.resets == 2


@pytest.mark.parametrize(
    "fault",
    [
        lambda p: p.cut(),
        lambda p: p.delay(0.5),
        lambda p: p.throttle(64 * KiB),
        lambda p: p.reset_after(1, repeat=True),
    ],
    ids=["cut", "delay", "throttle", "reset-after"],
)
async def test_heal_turns_every_fault_off(
    store: tuple[SeaweedServer, str],
    proxy: FaultProxy,
    clients: tuple[S3Client, S3Client],
    fault: Callable[[FaultProxy], None],
) -> None:
    through, _ = clients
    body = os.urandom(MiB)
    fault(proxy)
    proxy.heal()
    healed_at = time.time()
    started = time.perf_counter()
    await through.put(store[1], "healed.bin", body, {})
    assert await content(through, store[1], "healed.bin") == body
    elapsed = time.perf_counter() - started
    # Faulted, this is refused, reset, >= 2 s (4 delays) or >= 32 s (throttled).
    assert elapsed < 1.5, f"{elapsed:.2f}s"
    assert proxy.state.fault is Fault.NONE and proxy.state.since <= healed_at
