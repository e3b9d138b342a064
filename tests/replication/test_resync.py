"""Resync (ResyncRunner) over MemoryStores: what it queues, and the counts it keeps.

Ported from tests/test_resync.py, where the same stories ran the engine process and
the CLI against SeaweedFS; the CLI, the kill-and-resume and the cancel stay there.
"""

from __future__ import annotations

import asyncio
import contextlib

from engine.errors import TransientError
from engine.replication.resync import ResyncRunner
from engine.s3.memory import fail
from engine.state.sqlite.resyncs import SQLiteResyncStore
from engine.state.stores import DONE, Resync
from tests.replication.conftest import DST, POLICY, SRC, Clock, Rig, policy, until


async def resynced(rig: Rig, pid: str = "p1", page_size: int = 1000) -> Resync:
    """Start a resync of `pid`, run the runner until it is done and every copy landed."""
    dispatchers = {"src": rig.dispatcher, "dst": rig.dispatcher}
    runner = ResyncRunner(
        SQLiteResyncStore(rig.db), rig.queue, rig.policies, dispatchers, poll=0.01
    )
    (started,) = await runner.store.start([pid], page_size)

    async def done() -> Resync | None:
        r = await runner.store.get(started.id)
        return r if r.state == DONE else None

    loop = asyncio.create_task(runner.run())
    try:
        await until(done, within=30)
    finally:
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
    await rig.settle()
    return await runner.store.get(started.id)


def versions_of(rig: Rig) -> dict[str, int]:
    return {k: len(vs) for k, vs in sorted(rig.target.buckets[DST].items())}


async def test_resync_restores_objects_deleted_or_overwritten_on_the_target(rig: Rig) -> None:
    await rig.add(POLICY)
    for i in range(5):
        await rig.source.put(SRC, f"keep/{i:04}", bytes(100), {})
    await rig.source.put(SRC, "gone.txt", b"gone", {})
    await rig.source.put(SRC, "changed.txt", b"original", {})
    await rig.sync(POLICY)
    before = versions_of(rig)
    assert len(before) == 7 and set(before.values()) == {1}

    await rig.target.delete(DST, "gone.txt")  # a delete marker over the replica
    await rig.target.put(DST, "changed.txt", b"rogue", {})
    # Both replicas still exist under the out-of-band changes: the regular path sees
    # nothing to do, which is what a resync is for.
    assert (await rig.scan(POLICY)).enqueued == 0

    status = await resynced(rig)
    assert rig.target.live(DST) == rig.source.live(SRC)
    after = versions_of(rig)
    assert after["gone.txt"] == 3, "replica, the stray delete marker, the copy on top"
    assert after["changed.txt"] == 3, "replica, the stray overwrite, the copy on top"
    assert {k: n for k, n in after.items() if k.startswith("keep/")} == {
        k: 1 for k in before if k.startswith("keep/")
    }, "objects already correct are not copied again"
    assert (status.scanned, status.enqueued, status.replicated) == (7, 2, 2)
    assert (status.failed, status.skipped, status.pending) == (0, 0, 0)
    assert status.finished_at and status.total == 7 and status.cursor == "keep/0004"


async def test_resync_copies_old_objects_for_a_policy_without_existing_objects(
    rig: Rig, clock: Clock
) -> None:
    clock.now = 1000.0
    for i in range(10):
        await rig.source.put(SRC, f"old/{i:04}", bytes(100), {})
    await rig.source.put(SRC, "older/multi", b"v1", {})
    await rig.source.put(SRC, "older/multi", b"v2, longer", {})
    new_only = await rig.add(
        policy(replicate=frozenset({"delete", "delete-marker"}), created_at=1001.5)
    )
    clock.now = 1002.0
    await rig.sync(new_only)
    await rig.source.put(SRC, "new.txt", b"new", {})
    await rig.sync(new_only)
    assert set(rig.target.live(DST)) == {"new.txt"}, "the cutoff keeps old objects back"

    status = await resynced(rig, page_size=4)  # pages split the keys, and older/multi too
    assert rig.target.live(DST) == rig.source.live(SRC)
    assert versions_of(rig)["older/multi"] == 2 and versions_of(rig)["new.txt"] == 1
    assert rig.target.versions(DST, "older/multi")[0].data == b"v2, longer"
    assert (status.scanned, status.enqueued, status.replicated) == (13, 12, 12)
    assert (status.failed, status.pending) == (0, 0)


async def test_a_failing_target_listing_pauses_the_walk_which_then_finishes(rig: Rig) -> None:
    await rig.add(POLICY)
    for key in ("a", "b", "c"):
        await rig.source.put(SRC, key, key.encode(), {})
    rig.target.hook = fail(TransientError("list: SlowDown"), op="list_versions", times=2)
    status = await resynced(rig)
    assert (status.scanned, status.enqueued, status.replicated) == (3, 3, 3)
    assert status.last_error == "" and rig.target.live(DST) == rig.source.live(SRC)
    assert [c.op for c in rig.target.calls].count("list_versions") >= 3, "failed twice, then read"


async def test_a_tag_filtered_resync_queues_only_what_the_filter_takes(rig: Rig) -> None:
    """67 of 200 objects match `team=a&class=hot`, all 67 on the target: nothing to queue.
    The walk queued the 133 others (the transfer skipped each) and counted them as work."""
    hot = await rig.add(policy(tags={"team": "a", "class": "hot"}))
    for i in range(200):
        tags = "team=a&class=hot" if i % 3 == 0 else "team=a&class=cold"
        await rig.source.put(SRC, f"k/{i:04}", b"x", {"x-amz-tagging": tags})
    await rig.sync(hot)
    assert len(rig.target.live(DST)) == 67

    status = await resynced(rig)
    assert (status.scanned, status.enqueued, status.replicated, status.skipped) == (200, 0, 0, 0)
    assert len(rig.target.live(DST)) == 67
