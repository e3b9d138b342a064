"""A policy's options, from source change to target state: scan + dispatcher + transfer.

Ported from tests/test_replication.py, where each ran the real engine process against
two SeaweedFS servers to prove decisions the engine makes alone (what to copy, delete,
filter or leave). The stores' part of those proofs is test_store_contract.py's; the
engine process, CLI and real-server runs stay end to end in tests/test_replication.py.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from engine.replication.detector import Detector
from engine.s3.origin import ORIGIN
from tests.replication.conftest import DST, POLICY, SRC, Clock, Rig, origin, policy, reverse


def keys_of(rig: Rig, side: str) -> dict[str, int]:
    """Key -> how many versions (delete markers included) one side holds."""
    store, bucket = (rig.source, SRC) if side == "src" else (rig.target, DST)
    return {k: len(vs) for k, vs in sorted(store.buckets[bucket].items())}


async def test_delete_marker_version_delete_and_undelete(rig: Rig) -> None:
    await rig.add(POLICY)
    first, _ = await rig.source.put(SRC, "doc.txt", b"v1", {})
    await rig.source.put(SRC, "doc.txt", b"v2", {})
    await rig.source.put(SRC, "gone.txt", b"bye", {})
    await rig.sync(POLICY)
    assert rig.target.live(DST) == rig.source.live(SRC)

    marker, _ = await rig.source.delete(SRC, "gone.txt")
    await rig.source.delete(SRC, "doc.txt", first)  # a version removed for good
    await rig.sync(POLICY)
    assert rig.target.live(DST) == {"doc.txt": b"v2"}
    assert keys_of(rig, "dst") == {"doc.txt": 1, "gone.txt": 2}
    assert rig.target.versions(DST, "gone.txt")[0].is_delete_marker

    # Removing the source's delete marker (undelete) removes the target's.
    await rig.source.delete(SRC, "gone.txt", marker)
    await rig.sync(POLICY)
    assert rig.target.live(DST) == {"doc.txt": b"v2", "gone.txt": b"bye"}
    assert keys_of(rig, "dst") == {"doc.txt": 1, "gone.txt": 1}


async def test_without_delete_options_deletes_stay_on_the_source(rig: Rig) -> None:
    keep = await rig.add(policy(replicate=frozenset({"existing-objects"})))
    await rig.source.put(SRC, "keep.txt", b"data", {})
    await rig.source.put(SRC, "old.txt", b"old", {})
    await rig.sync(keep)
    await rig.source.delete(SRC, "keep.txt")
    old = rig.source.versions(SRC, "old.txt")[0].version_id
    await rig.source.delete(SRC, "old.txt", old)
    counts = await rig.sync(keep)
    assert rig.target.live(DST) == {"keep.txt": b"data", "old.txt": b"old"}
    assert rig.source.live(SRC) == {}
    assert (counts["p1"].replicated, counts["p1"].pending) == (2, 0), "nothing else planned"


async def test_prefix_and_tag_filters(rig: Rig) -> None:
    filtered = await rig.add(policy(prefix="logs/", tags={"ship": "yes"}))
    await rig.source.put(SRC, "logs/a.txt", b"a", {"x-amz-tagging": "ship=yes"})
    await rig.source.put(SRC, "logs/b.txt", b"b", {"x-amz-tagging": "ship=no"})
    await rig.source.put(SRC, "logs/c.txt", b"c", {})
    await rig.source.put(SRC, "other/d.txt", b"d", {"x-amz-tagging": "ship=yes"})
    counts = await rig.sync(filtered)
    assert rig.target.live(DST) == {"logs/a.txt": b"a"}
    assert (counts["p1"].replicated, counts["p1"].skipped) == (1, 2)
    assert not [c for c in rig.source.calls if c.key.startswith("other/") and c.op == "get"]


async def test_existing_objects_off_copies_only_new_writes(rig: Rig, clock: Clock) -> None:
    clock.now = 1000.0
    await rig.source.put(SRC, "before.txt", b"old", {})
    # Listings have one-second resolution: the policy is added in the next second.
    new_only = await rig.add(
        policy(replicate=frozenset({"delete", "delete-marker"}), created_at=1001.2)
    )
    clock.now = 1001.0  # a write in the policy's own second is copied (ambiguous is safer)
    await rig.source.put(SRC, "same-second.txt", b"now", {})
    clock.now = 1002.0
    await rig.source.put(SRC, "after.txt", b"new", {})
    counts = await rig.sync(new_only)
    assert rig.target.live(DST) == {"after.txt": b"new", "same-second.txt": b"now"}
    assert counts["p1"].replicated == 2


async def test_two_way_replication_does_not_loop(rig: Rig) -> None:
    back = reverse(POLICY)
    await rig.add(POLICY)
    await rig.add(back)
    await rig.source.put(SRC, "from-a.txt", b"A", {})
    await rig.target.put(DST, "from-b.txt", b"B", {})
    both = {"from-a.txt": b"A", "from-b.txt": b"B"}
    for _ in range(3):  # and two more rounds in each direction must send nothing back
        counts = await rig.sync(POLICY, back)
        assert rig.source.live(SRC) == rig.target.live(DST) == both
    assert keys_of(rig, "src") == keys_of(rig, "dst") == {"from-a.txt": 1, "from-b.txt": 1}
    assert (counts["p1"].replicated, counts["p2"].replicated) == (1, 1)
    assert rig.target.versions(DST, "from-a.txt")[0].metadata[ORIGIN] == origin(rig.source, SRC)


def test_the_detector_names_the_policies_running_the_other_way() -> None:
    """What sync() above passes to scan as echoes is what the engine's Detector finds."""
    back, other = reverse(POLICY), policy(id="p3", priority=3, target_bucket="elsewhere")
    topology: Any = SimpleNamespace(policies={p.id: p for p in (POLICY, back, other)})
    detector = Detector(topology)
    assert detector.reverse(POLICY) == ["p2"]
    assert detector.reverse(back) == ["p1"]
    assert detector.reverse(other) == []
