"""A full scan racing an event-driven copy on two real SeaweedFS servers.

The scan lists the source, then reads the replica map. A key written in between,
and copied at once because its event came in (MinIO's webhook), is in the map but
not in the listing: it must not be taken for a version deleted at the source.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from engine.config import EngineConfig
from engine.model import Op
from engine.replication.scanner import scan
from engine.s3.client import ListedVersion, S3Client
from engine.service.webhook import Record, ingest
from tests.conftest import Pair, Rig, eventually
from tests.engines import minio_event, start

# `mirrorline run`'s own interval (the engine's default), not the fixtures' fast 0.5 s.
DEFAULT_SCAN_INTERVAL = next(
    f.default for f in dataclasses.fields(EngineConfig) if f.name == "scan_interval"
)


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


async def queued(rig: Rig) -> list[tuple[str, Op]]:
    return [(t.key, t.op) for t in await rig.queue.tasks("p1")]


@pytest.mark.parametrize("chunk_keys", [1000, 1])  # the race in the first page, or a later one
@pytest.mark.parametrize("late_key", ["b-between", "z-past-the-end"])
async def test_a_copy_recorded_after_the_source_listing_is_not_deleted(
    rig: Rig, late_key: str, chunk_keys: int
) -> None:
    for key in ("a", "c"):
        rig.pair.put(key, key.encode())
    assert rig.policy.wants("delete")  # permanent deletes are mirrored: the race deletes a replica
    await scan(rig.policy, rig.source, rig.target, rig.queue, chunk_keys=chunk_keys)
    assert await rig.run_queued() == [Op.PUT, Op.PUT]

    async def written_and_copied_through_its_event() -> None:
        version = await asyncio.to_thread(rig.pair.put, late_key, b"late")
        event = Record("s3:ObjectCreated:Put", rig.pair.src_bucket, late_key, version, 4, "", 0)
        assert (await ingest([event], [rig.policy], rig.queue, None)).enqueued == 1
        assert await rig.run_queued() == [Op.PUT]

    racing = ListedThen(rig.source, written_and_copied_through_its_event)
    await scan(rig.policy, racing, rig.target, rig.queue, chunk_keys=chunk_keys)  # type: ignore[arg-type]
    assert racing.ran, "the write did not land between listing and map read"
    (replica,) = rig.target_versions(late_key)

    assert await queued(rig) == [], "the fresh replica was taken for an orphan"
    await scan(rig.policy, rig.source, rig.target, rig.queue)  # sees the key: nothing to do
    assert await rig.run_queued() == []
    assert rig.target_versions(late_key) == [replica]


async def test_a_copy_recorded_after_its_target_page_was_listed_is_not_queued_again(
    rig: Rig,
) -> None:
    # The target-side twin: the target page holding "b" is listed while the scan
    # plans "a" (it reads one group ahead), before the map is read for "b".
    rig.pair.put("a", b"a")
    await scan(rig.policy, rig.source, rig.target, rig.queue)
    assert await rig.run_queued() == [Op.PUT]
    version = rig.pair.put("b", b"b")

    async def copied_through_its_event() -> None:
        event = Record("s3:ObjectCreated:Put", rig.pair.src_bucket, "b", version, 1, "", 0)
        assert (await ingest([event], [rig.policy], rig.queue, None)).enqueued == 1
        assert await rig.run_queued() == [Op.PUT]

    racing = ListedThen(rig.target, copied_through_its_event)
    await scan(rig.policy, rig.source, racing, rig.queue, chunk_keys=1)  # type: ignore[arg-type]
    assert racing.ran
    assert await queued(rig) == [], "a replica on record was taken for a lost one"
    assert (await rig.queue.counts())["p1"].replicated == 2
    assert len(rig.target_versions("b")) == 1


@pytest.mark.parametrize("chunk_keys", [1000, 1])
async def test_a_version_deleted_for_good_at_the_source_is_still_deleted(
    rig: Rig, chunk_keys: int
) -> None:
    # "a/1" sorts after the chunk boundary "a": the fresh listing starts after the
    # previous chunk's last key and must still see (and so spare) nothing gone.
    written = [(key, rig.pair.put(key, os.urandom(8))) for key in ("a", "a/1", "a/1", "b")]
    gone, live = (version for key, version in written if key == "a/1")
    await scan(rig.policy, rig.source, rig.target, rig.queue, chunk_keys=chunk_keys)
    assert len(await rig.run_queued()) == 4
    assert len(rig.target_versions("a/1")) == 2
    rig.pair.src.remove_object(rig.pair.src_bucket, "a/1", version_id=gone)

    await scan(rig.policy, rig.source, rig.target, rig.queue, chunk_keys=chunk_keys)
    assert await rig.run_queued() == [Op.DELETE_VERSION]
    assert rig.target_versions("a/1") == [await rig.queue.replica_of("p1", "a/1", live)]
    assert await rig.queue.replica_of("p1", "a/1", gone) is None


@pytest.mark.parametrize("chunk_keys", [1000, 1])
async def test_a_replica_deleted_on_the_target_is_still_copied_again(
    rig: Rig, chunk_keys: int
) -> None:
    for key in ("a", "b/1", "c"):
        rig.pair.put(key, key.encode())
    await scan(rig.policy, rig.source, rig.target, rig.queue, chunk_keys=chunk_keys)
    assert len(await rig.run_queued()) == 3
    (lost,) = rig.target_versions("b/1")
    rig.pair.dst.remove_object(rig.pair.dst_bucket, "b/1", version_id=lost)

    await scan(rig.policy, rig.source, rig.target, rig.queue, chunk_keys=chunk_keys)
    assert await queued(rig) == [("b/1", Op.PUT)]
    assert await rig.run_queued() == [Op.PUT]
    (again,) = rig.target_versions("b/1")
    assert again != lost and rig.pair.target_latest()["b/1"] == b"b/1"


class Watcher(threading.Thread):
    """Lists the target's versions (delete markers included) every ~100 ms, from outside.

    Nothing is deleted at the source, so a version listed once and missing later
    was deleted by replication.
    """

    def __init__(self, pair: Pair, prefix: str) -> None:
        super().__init__(daemon=True)
        self.pair = pair
        self.prefix = prefix
        self.seen: set[tuple[str, str]] = set()
        self.vanished: set[tuple[str, str]] = set()
        self.markers: set[tuple[str, str]] = set()
        self.rounds = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            now: set[tuple[str, str]] = set()
            for v in self.pair.dst.list_objects(
                self.pair.dst_bucket, self.prefix, recursive=True, include_version=True
            ):
                now.add((v.object_name, v.version_id))
                if v.is_delete_marker:
                    self.markers.add((v.object_name, v.version_id))
            self.vanished |= self.seen - now
            self.seen |= now
            self.rounds += 1


@pytest.mark.slow
def test_events_and_default_interval_scans_never_delete_and_recopy_a_replica(pair: Pair) -> None:
    """A writer at 20 writes/s posts each write to the webhook as MinIO would, for 25 s.

    1,200 older objects are replicated first, so the scans walk two pages of each
    listing and the writes land in the second: both page-boundary races are in play.
    The watcher catches a replica deleted after it was listed; one deleted within
    ~10 ms of its copy may slip between two listings, but its delete and its second
    copy each add one to `replicated`, which must equal the objects written.
    """
    base = [f"base/{n:05}" for n in range(1200)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: pair.put(key, key.encode()), base))
    pair.add_policy()
    api = start(pair, "--scan-interval", str(DEFAULT_SCAN_INTERVAL))
    eventually(lambda: api.policy("p1")["backlog"]["replicated"] >= len(base), 90)
    watcher = Watcher(pair, "log/")  # where the writes go: one page, listed in ~100 ms
    watcher.start()

    def write(key: str) -> None:
        version = pair.put(key, os.urandom(512))
        event = minio_event("s3:ObjectCreated:Put", pair.src_bucket, key, version, 512)
        assert api.post("/v1/events/minio", {"Records": [event]})["records"] == 1

    keys: list[str] = []
    with ThreadPoolExecutor(4) as pool:
        writes = []
        started = time.monotonic()
        while (elapsed := time.monotonic() - started) < 25:
            if len(keys) < elapsed * 20:  # the pace, not a synchronisation
                keys.append(f"log/{len(keys):05}")  # ascending, as logs: past the last listed
                writes.append(pool.submit(write, keys[-1]))
            time.sleep(0.005)
    for done in writes:
        done.result()
    assert len(keys) >= 490

    def settled() -> bool:
        backlog = api.policy("p1")["backlog"]
        idle = backlog["pending"] + backlog["in_flight"] + backlog["retrying"] == 0
        return idle and backlog["replicated"] >= len(base) + len(keys)

    eventually(settled, 90)
    scans = api.policy("p1")["scans"]
    eventually(lambda: api.policy("p1")["scans"] >= scans + 2, 30)  # later scans change nothing
    watcher.stop.set()
    watcher.join()
    assert watcher.rounds >= 50, watcher.rounds  # two listings a second at least, even loaded
    assert watcher.vanished == set(), f"{len(watcher.vanished)} target versions deleted"
    assert watcher.markers == set()
    assert sorted(key for key, _ in watcher.seen) == keys, "a second version, or none"
    on_target = pair.dst.list_objects(
        pair.dst_bucket, "base/", recursive=True, include_version=True
    )
    assert sorted(v.object_name for v in on_target) == base
    assert api.policy("p1")["backlog"]["replicated"] == len(base) + len(keys)
    assert pair.stop_engine(api.proc) == 0
