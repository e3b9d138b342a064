"""Change detection (scan, sweep_tags) against MemoryStores and the real SQLite queue."""

from __future__ import annotations

import pytest

from engine.errors import PermanentError, TransientError
from engine.model import Op, TaskState
from engine.replication.scanner import sweep_tags
from engine.s3.memory import fail
from engine.s3.origin import ORIGIN
from tests.replication.conftest import DST, POLICY, SRC, Rig, origin, reverse


async def planned(rig: Rig) -> list[tuple[str, str, str, int]]:
    """(key, op, source version, seq) of every pending task, in queue order."""
    tasks = await rig.queue.tasks(states=[TaskState.PENDING])
    return [(t.key, t.op.value, t.version_id, t.seq) for t in tasks]


async def test_a_scan_plans_each_new_version_once_oldest_first(rig: Rig) -> None:
    await rig.add(POLICY)
    v1, _ = await rig.source.put(SRC, "k", b"1", {})
    v2, _ = await rig.source.put(SRC, "k", b"2", {})
    j, _ = await rig.source.put(SRC, "j", b"j", {})
    rig.hold(POLICY)
    result = await rig.scan(POLICY)
    assert (result.keys, result.versions, result.enqueued) == (2, 3, 3)
    assert await planned(rig) == [("j", "put", j, 0), ("k", "put", v1, 0), ("k", "put", v2, 1)]
    assert (await rig.scan(POLICY)).enqueued == 0, "a second scan finds nothing new"

    rig.hold(POLICY, False)
    await rig.settle()
    assert (await rig.scan(POLICY)).enqueued == 0, "nor once they are replicated"
    assert [v.data for v in rig.target.versions(DST, "k")] == [b"2", b"1"]


async def test_deletes_at_the_source_are_planned_for_the_target(rig: Rig) -> None:
    await rig.add(POLICY)
    first, _ = await rig.source.put(SRC, "doc", b"v1", {})
    await rig.source.put(SRC, "doc", b"v2", {})
    await rig.source.put(SRC, "gone", b"bye", {})
    await rig.sync(POLICY)
    replica = await rig.queue.replica_of("p1", "doc", first)

    marker, _ = await rig.source.delete(SRC, "gone")
    await rig.source.delete(SRC, "doc", first)
    rig.hold(POLICY)
    await rig.scan(POLICY)
    tasks = await rig.queue.tasks(states=[TaskState.PENDING])
    assert {(t.key, t.op, t.version_id, t.target_version) for t in tasks} == {
        ("gone", Op.DELETE_MARKER, marker, ""),
        ("doc", Op.DELETE_VERSION, first, replica),
    }


async def test_a_replica_is_never_echoed_back(rig: Rig) -> None:
    back = reverse(POLICY)
    await rig.add(POLICY)
    await rig.add(back)
    await rig.source.put(SRC, "from-a", b"A", {})
    await rig.target.put(DST, "from-b", b"B", {})
    await rig.sync(POLICY, back)
    assert rig.source.live(SRC) == rig.target.live(DST) == {"from-a": b"A", "from-b": b"B"}
    # The scan skips what the reverse policy wrote; without that knowledge it would plan
    # the replica, and the transfer would still refuse it (its origin is the target).
    assert (await rig.scan(back, ["p1"])).enqueued == 0
    assert (await rig.scan(back)).enqueued == 1
    counts = await rig.settle()
    assert counts["p2"].skipped == 1
    for store, bucket in ((rig.source, SRC), (rig.target, DST)):
        assert sum(len(vs) for vs in store.buckets[bucket].values()) == 2, "no version went back"
    (echo,) = rig.target.versions(DST, "from-a")
    assert echo.metadata[ORIGIN] == origin(rig.source, SRC)


async def test_changed_tags_are_found_by_the_sweep_and_synced(rig: Rig) -> None:
    await rig.add(POLICY)
    v, _ = await rig.source.put(SRC, "labels", b"x", {"x-amz-tagging": "stage=draft"})
    await rig.sync(POLICY)
    assert await sweep_tags(POLICY, rig.source, rig.target, rig.queue, "") == ("labels", 0)
    await rig.source.put_tags(SRC, "labels", v, {"stage": "final", "owner": "qa"})
    assert await sweep_tags(POLICY, rig.source, rig.target, rig.queue, "") == ("labels", 1)
    assert await sweep_tags(POLICY, rig.source, rig.target, rig.queue, "labels") == ("", 0)
    await rig.settle()
    assert await rig.target.get_tags(DST, "labels") == {"stage": "final", "owner": "qa"}
    assert len(rig.target.versions(DST, "labels")) == 1


async def test_a_failed_listing_fails_the_scan_and_the_next_scan_completes(rig: Rig) -> None:
    await rig.add(POLICY)
    for key in ("a", "b"):
        await rig.source.put(SRC, key, key.encode(), {})
    rig.target.hook = fail(TransientError("list timed out"), op="list_versions")
    with pytest.raises(TransientError):
        await rig.scan(POLICY)
    assert (await rig.scan(POLICY)).enqueued == 2
    del rig.target.buckets[DST]
    with pytest.raises(PermanentError, match="NoSuchBucket"):
        await rig.scan(POLICY)
