"""--bandwidth: the token bucket holds a real transfer to its rate."""

from __future__ import annotations

import asyncio
import io
import os
import time

from engine.demo.seaweed import SeaweedServer
from engine.model import Op, Outcome, Task
from engine.policy import Policy
from engine.replication.bandwidth import TokenBucket
from engine.replication.transfer import TransferContext, execute
from engine.s3.client import S3Client
from tests.conftest import client_for, make_bucket

MiB = 1024 * 1024


async def test_bandwidth_limit_holds_within_ten_percent_over_20_mib(
    servers: tuple[SeaweedServer, SeaweedServer],
) -> None:
    source, target = servers
    src, dst = client_for(source), client_for(target)
    make_bucket(src, "bw-src")
    make_bucket(dst, "bw-dst")
    body = os.urandom(20 * MiB)
    put = await asyncio.to_thread(
        src.put_object, "bw-src", "big.bin", io.BytesIO(body), len(body), part_size=5 * MiB
    )
    rate = 4 * MiB  # a 5 s window: the last part's unthrottled upload stays a small share
    policy = Policy("bw", 1, "a", "bw-src", "b", "bw-dst", bandwidth=rate)
    clients = [S3Client(s.endpoint, s.access_key, s.secret_key) for s in (source, target)]
    ctx = TransferContext(
        policy=policy,
        source=clients[0],
        target=clients[1],
        source_origin="a/bw-src",
        target_origin="b/bw-dst",
        limit=TokenBucket(rate),
    )
    task = Task(policy="bw", key="big.bin", version_id=put.version_id, op=Op.PUT, size=len(body))
    try:
        started = time.monotonic()
        done = await execute(task, ctx)
        elapsed = time.monotonic() - started
    finally:
        for client in clients:
            await client.close()
    assert done.outcome is Outcome.REPLICATED and done.bytes == len(body)
    achieved = len(body) / elapsed
    print(f"bandwidth: {achieved / MiB:.2f} MiB/s achieved, limit {rate / MiB:.0f} MiB/s")
    assert 0.9 * rate <= achieved <= 1.1 * rate, f"{achieved / MiB:.2f} MiB/s against {rate / MiB}"
    copied = await asyncio.to_thread(lambda: dst.get_object("bw-dst", "big.bin").read())
    assert copied == body


async def test_concurrent_takers_share_one_rate() -> None:
    bucket = TokenBucket(4 * MiB)
    started = time.monotonic()
    await asyncio.gather(*(bucket.take(MiB) for _ in range(8)))
    elapsed = time.monotonic() - started
    assert 1.8 <= elapsed <= 2.3, elapsed  # 8 MiB at 4 MiB/s, from an empty bucket
