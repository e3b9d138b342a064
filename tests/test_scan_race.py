"""A full scan racing an event-driven copy on two real SeaweedFS servers.

The scan lists the source, then reads the replica map. A key written in between,
and copied at once because its event came in (MinIO's webhook), is in the map but
not in the listing: it must not be taken for a version deleted at the source.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from engine.aliases import Alias
from engine.model import Op
from engine.policy import Policy
from engine.replication.scanner import scan
from engine.replication.transfer import TransferContext, execute
from engine.s3.client import ListedVersion, S3Client
from engine.service.webhook import Record, ingest
from engine.state.sqlite.database import open_db
from engine.state.sqlite.queue import SQLiteQueue
from tests.conftest import Pair


class ListedThen:
    """The source, except that `meanwhile` runs once, right after a listing is complete.

    That is the moment of the race: the scan holds a listing older than anything
    `meanwhile` writes, and has not read the replica map yet.
    """

    def __init__(self, source: S3Client, meanwhile: Callable[[], Awaitable[Any]]) -> None:
        self._source = source
        self._meanwhile = meanwhile
        self.ran = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    async def list_versions(self, *args: Any, **kwargs: Any) -> AsyncIterator[list[ListedVersion]]:
        async for page in self._source.list_versions(*args, **kwargs):
            yield page
        if not self.ran:
            self.ran = True
            await self._meanwhile()


def client(server: Any, name: str) -> S3Client:
    return S3Client.for_alias(Alias(name, server.endpoint, server.access_key, server.secret_key))


async def run_queued(queue: SQLiteQueue, ctx: TransferContext) -> list[Op]:
    """Carry out every queued task, as a dispatcher would; returns their ops."""
    ops: list[Op] = []
    while tasks := await queue.claim([ctx.policy.id], 100, 60):
        await queue.complete([await execute(task, ctx) for task in tasks])
        ops += [task.op for task in tasks]
    return ops


def target_versions(pair: Pair, key: str) -> list[str]:
    listed = pair.dst.list_objects(pair.dst_bucket, prefix=key, include_version=True)
    return [v.version_id for v in listed if v.object_name == key]


@pytest.mark.parametrize("late_key", ["b-between", "z-past-the-end"])
async def test_a_copy_recorded_after_the_source_listing_is_not_deleted(
    pair: Pair, tmp_path: Path, late_key: str
) -> None:
    for key in ("a", "c"):
        pair.put(key, key.encode())
    policy = Policy("p1", 1, "src", pair.src_bucket, "dst", pair.dst_bucket)
    assert policy.wants("delete")  # permanent deletes are mirrored: the race deletes a replica
    queue = SQLiteQueue(await open_db(tmp_path / "state.db"))
    source, target = client(pair.source, "src"), client(pair.target, "dst")
    ctx = TransferContext(
        policy,
        source,
        target,
        f"{pair.source.endpoint.split('//')[1]}/{pair.src_bucket}",
        f"{pair.target.endpoint.split('//')[1]}/{pair.dst_bucket}",
    )
    try:
        await scan(policy, source, target, queue)
        assert await run_queued(queue, ctx) == [Op.PUT, Op.PUT]

        async def written_and_copied_through_its_event() -> None:
            version = await asyncio.to_thread(pair.put, late_key, b"late")
            event = Record("s3:ObjectCreated:Put", pair.src_bucket, late_key, version, 4, "", 0.0)
            assert await ingest([event], [policy], queue, None) == 1
            assert await run_queued(queue, ctx) == [Op.PUT]

        racing = ListedThen(source, written_and_copied_through_its_event)
        await scan(policy, racing, target, queue)  # type: ignore[arg-type]
        assert racing.ran, "the write did not land between listing and map read"
        (replica,) = target_versions(pair, late_key)

        queued = [(t.key, t.op) for t in await queue.tasks("p1")]
        assert queued == [], "the fresh replica was taken for an orphan"
        await scan(policy, source, target, queue)  # the next scan sees the key: nothing to do
        assert await run_queued(queue, ctx) == []
        assert target_versions(pair, late_key) == [replica]
    finally:
        await queue.close()
        for c in (source, target):
            await c.close()
