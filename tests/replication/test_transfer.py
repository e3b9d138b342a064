"""One task against the target (transfer.execute), on MemoryStores with faults."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace

import pytest

from engine.errors import NotFoundError, TransientError
from engine.model import Completion, Op, Outcome, Task
from engine.replication.bandwidth import TokenBucket
from engine.replication.budget import ByteBudget
from engine.replication.transfer import execute
from engine.s3.memory import MIN_PART, fail
from engine.s3.origin import COPIED_HEADERS, ORIGIN, ORIGIN_ETAG, ORIGIN_VERSION
from tests.replication.conftest import DST, POLICY, SRC, Rig, origin, policy

MiB = 1024 * 1024
STANDARD = {
    "content-type": "text/x-test",
    "cache-control": "max-age=60",
    "content-disposition": 'attachment; filename="a.txt"',
    "content-encoding": "identity",
    "content-language": "fr",
    "expires": "Thu, 01 Dec 2030 16:00:00 GMT",
}


async def put_source(rig: Rig, key: str, data: bytes, **headers: str) -> Task:
    """Write a source version; the PUT task the scanner would plan for it."""
    version, etag = await rig.source.put(SRC, key, data, headers)
    return Task(
        policy="p1", key=key, version_id=version, op=Op.PUT, size=len(data), etag=etag, id=1
    )


def on_replica(copied: Task, done: Completion, op: Op) -> Task:
    """The follow-up task the scanner plans for a copied version: it acts on the replica."""
    return Task(
        policy="p1",
        key=copied.key,
        version_id=copied.version_id,
        op=op,
        target_version=done.target_version or "",
        id=copied.id + 1,
    )


async def test_a_copy_carries_body_headers_metadata_tags_and_its_origin(rig: Rig) -> None:
    task = await put_source(
        rig,
        "doc.txt",
        b"content",
        **STANDARD,
        **{"x-amz-meta-owner": "ops", "x-amz-tagging": "a=1"},
    )
    done = await execute(task, rig.context(POLICY))
    assert (done.outcome, done.bytes) == (Outcome.REPLICATED, 7)
    (replica,) = rig.target.versions(DST, "doc.txt")
    assert (replica.version_id, replica.data, replica.tags) == (
        done.target_version,
        b"content",
        {"a": "1"},
    )
    assert {name: replica.headers.get(name) for name in COPIED_HEADERS} == STANDARD
    assert replica.metadata == {
        "owner": "ops",
        ORIGIN: origin(rig.source, SRC),
        ORIGIN_VERSION: task.version_id,
        ORIGIN_ETAG: task.etag,
    }


async def test_a_repeated_copy_finds_the_replica_and_writes_nothing(rig: Rig) -> None:
    task = await put_source(rig, "k", b"once")
    first = await execute(task, rig.context(POLICY))
    again = await execute(replace(task, target_has_key=True), rig.context(POLICY))
    assert (again.outcome, again.target_version) == (Outcome.ALREADY, first.target_version)
    assert len(rig.target.versions(DST, "k")) == 1


async def test_a_task_run_again_under_newer_versions_finds_its_replica(rig: Rig) -> None:
    """Killed after two versions of one key (one claim) and a marker landed, before their
    completions were recorded: the older task, run again, finds its replica below the
    newer ones instead of writing it a second time on top."""
    v1 = await put_source(rig, "k", b"one")
    v2 = await put_source(rig, "k", b"two")
    first = await execute(v1, rig.context(POLICY))
    await execute(v2, rig.context(POLICY))
    marker = Task(policy="p1", key="k", version_id="dm", op=Op.DELETE_MARKER, id=3)
    await execute(marker, rig.context(POLICY))
    rerun = replace(v1, target_has_key=True, attempts=2)
    again = await execute(rerun, rig.context(POLICY))
    assert (again.outcome, again.target_version) == (Outcome.ALREADY, first.target_version)
    assert [v.data for v in rig.target.versions(DST, "k")] == [b"", b"two", b"one"]


async def test_a_large_object_goes_in_parts_and_every_byte_is_counted(rig: Rig) -> None:
    data = os.urandom(2 * MIN_PART + 100)
    task = await put_source(rig, "big.bin", data)
    seen: list[int] = []
    ctx = rig.context(POLICY)
    ctx.on_bytes = seen.append
    progress: list[int] = []
    done = await execute(task, ctx, progress=progress.append)
    assert done.outcome is Outcome.REPLICATED and sum(seen) == sum(progress) == len(data)
    (replica,) = rig.target.versions(DST, "big.bin")
    assert replica.data == data and replica.etag.endswith("-3")
    assert [c.op for c in rig.target.calls].count("upload_part") == 3
    assert rig.target.uploads == {}


async def test_a_fault_mid_copy_is_retryable_and_leaves_no_partial_object(rig: Rig) -> None:
    data = os.urandom(2 * MIN_PART + 100)
    task = await put_source(rig, "big.bin", data)
    ctx = rig.context(POLICY)
    ctx.part_budget = ByteBudget(MIN_PART)  # the engine-wide part budget, shared by attempts
    rig.source.hook = fail(TransientError("source: connection reset"), op="read", nth=2)
    with pytest.raises(TransientError) as error:  # one error with its class, not a group
        await execute(task, ctx)
    assert error.value.retryable
    assert rig.target.versions(DST, "big.bin") == [] and rig.target.uploads == {}, "aborted"
    assert "abort_multipart" in [c.op for c in rig.target.calls]

    rig.target.hook = fail(rig.target.unreachable(), op="upload_part", nth=2)
    with pytest.raises(TransientError) as dropped:
        await execute(task, ctx)
    assert dropped.value.link_down and dropped.value.endpoint == rig.target.endpoint
    assert rig.target.versions(DST, "big.bin") == [] and rig.target.uploads == {}

    async with asyncio.timeout(10):  # a part slot lost to a fault would hang this for good
        done = await execute(task, ctx)  # the retry, with the faults spent
    assert done.outcome is Outcome.REPLICATED
    assert [v.data for v in rig.target.versions(DST, "big.bin")] == [data]


async def test_a_body_that_does_not_match_its_etag_is_retried_not_written(rig: Rig) -> None:
    task = await put_source(rig, "k", b"original")
    rig.source.versions(SRC, "k")[0].data = b"bitrot!!"  # same size, other bytes
    with pytest.raises(TransientError, match="does not match the source ETag"):
        await execute(task, rig.context(POLICY))
    assert rig.target.versions(DST, "k") == []


async def test_delete_marker_and_version_delete_reach_the_target(rig: Rig) -> None:
    task = await put_source(rig, "k", b"v1")
    copied = await execute(task, rig.context(POLICY))
    marker = Task(policy="p1", key="k", version_id="dm", op=Op.DELETE_MARKER, id=2)
    assert (await execute(marker, rig.context(POLICY))).outcome is Outcome.REPLICATED
    assert rig.target.live(DST) == {} and rig.target.versions(DST, "k")[0].is_delete_marker

    gone = on_replica(task, copied, Op.DELETE_VERSION)
    assert (await execute(gone, rig.context(POLICY))).outcome is Outcome.REPLICATED
    assert [v.version_id for v in rig.target.versions(DST, "k")] != [copied.target_version]
    assert all(v.is_delete_marker for v in rig.target.versions(DST, "k"))
    # Deleting it again is quiet (as on SeaweedFS): the task is simply done.
    assert (await execute(gone, rig.context(POLICY))).outcome is Outcome.REPLICATED


async def test_a_delete_marker_task_run_again_makes_no_second_marker(rig: Rig) -> None:
    """A crash after the marker was made but before its completion was recorded runs the
    task again: it finds the marker on top and is done, without stacking another."""
    task = await put_source(rig, "k", b"v1")
    await execute(task, rig.context(POLICY))
    await rig.target.put(DST, "k/longer", b"", {})  # listed after "k", never for it
    marker = Task(policy="p1", key="k", version_id="dm", op=Op.DELETE_MARKER, id=2)
    first = await execute(marker, rig.context(POLICY))
    again = await execute(marker, rig.context(POLICY))
    assert (first.outcome, again.outcome) == (Outcome.REPLICATED, Outcome.ALREADY)
    assert again.target_version == first.target_version
    assert [v.is_delete_marker for v in rig.target.versions(DST, "k")] == [True, False]


async def test_tag_sync_replaces_the_replicas_tags(rig: Rig) -> None:
    task = await put_source(rig, "k", b"x", **{"x-amz-tagging": "stage=draft"})
    copied = await execute(task, rig.context(POLICY))
    await rig.source.put_tags(SRC, "k", task.version_id, {"stage": "final", "owner": "qa"})
    sync = on_replica(task, copied, Op.METADATA)
    assert (await execute(sync, rig.context(POLICY))).outcome is Outcome.REPLICATED
    assert await rig.target.get_tags(DST, "k") == {"stage": "final", "owner": "qa"}
    await rig.source.put_tags(SRC, "k", task.version_id, {})
    await execute(sync, rig.context(POLICY))
    assert await rig.target.get_tags(DST, "k") == {}
    assert len(rig.target.versions(DST, "k")) == 1, "tags change no version"


async def test_tag_sync_onto_a_replica_gone_from_the_target_ends_not_parked(rig: Rig) -> None:
    """The demo's console showed it: the target bucket made again, a METADATA task queued
    for the lost replica failed NoSuchKey, and each retry would fail the same way."""
    task = await put_source(rig, "k", b"x")
    copied = await execute(task, rig.context(POLICY))
    await rig.target.delete(DST, "k", copied.target_version)
    sync = on_replica(task, copied, Op.METADATA)
    done = await execute(sync, rig.context(POLICY))
    assert (done.outcome, done.note) == (Outcome.SKIPPED, "replica gone from the target")
    assert rig.target.versions(DST, "k") == [], "nothing written in its place"


async def test_what_is_skipped_writes_nothing(rig: Rig) -> None:
    ctx = rig.context(policy(tags={"ship": "yes"}))
    held = await put_source(rig, "held", b"x", **{"x-amz-tagging": "ship=no"})
    assert (await execute(held, ctx)).note == "tag filter"
    shipped = await put_source(rig, "shipped", b"x", **{"x-amz-tagging": "ship=yes"})
    assert (await execute(shipped, ctx)).outcome is Outcome.REPLICATED
    gone = await put_source(rig, "gone", b"x")
    await rig.source.delete(SRC, "gone", gone.version_id)
    assert (await execute(gone, ctx)).note == "gone at source"
    old = await put_source(rig, "old", b"x")
    superseded = await execute(old, ctx, newest=(old.src_mtime + 1, 0, "v-newer"))
    assert superseded.note == "superseded"
    echo = await put_source(rig, "echo", b"x", **{f"x-amz-meta-{ORIGIN}": origin(rig.target, DST)})
    assert (await execute(echo, rig.context(POLICY))).note == "replica of target"
    assert rig.target.live(DST) == {"shipped": b"x"}


async def test_a_version_deleted_at_the_source_between_list_and_copy_is_skipped(rig: Rig) -> None:
    task = await put_source(rig, "k", b"x")
    rig.source.buckets[SRC].clear()
    done = await execute(task, rig.context(POLICY))
    assert (done.outcome, done.target_version) == (Outcome.SKIPPED, None)
    with pytest.raises(NotFoundError):
        await rig.target.head(DST, "k")


async def test_parts_sent_at_once_share_the_policys_rate(rig: Rig) -> None:
    """Never faster than the limit (the bucket starts empty); how close to it a real
    transfer gets is tests/test_bandwidth.py's claim, on SeaweedFS."""
    data = os.urandom(2 * MIN_PART + MiB)  # three parts, sent at once
    task = await put_source(rig, "big.bin", data)
    rate = 16 * MiB
    ctx = rig.context(policy(bandwidth=rate))
    ctx.limit = TokenBucket(rate)
    started = time.monotonic()
    done = await execute(task, ctx)
    elapsed = time.monotonic() - started
    assert done.outcome is Outcome.REPLICATED and rig.target.live(DST) == {"big.bin": data}
    assert len(data) / elapsed <= rate, f"{len(data) / elapsed / MiB:.2f} MiB/s over the limit"


async def test_a_same_second_tie_is_settled_by_the_source_listing(rig: Rig) -> None:
    """A PUT queued from an event (its time in milliseconds) then a delete marker queued
    by a scan (a listing's whole second, a later position) in the same second: CI saw the
    marker skipped as "superseded", because 527.239 > 527.0, and the deleted object stayed
    live on the target. The source's listing order decides a tie, both ways round."""
    put = await put_source(rig, "k", b"x")
    copied = await execute(put, rig.context(POLICY))
    marker_version, _ = await rig.source.delete(SRC, "k")
    second = float(int(time.time()))
    by_event = (second + 0.239, 0, put.version_id)  # the PUT's replica, as the map has it
    marker = Task("p1", "k", marker_version, Op.DELETE_MARKER, src_mtime=second, seq=1, id=2)
    done = await execute(marker, rig.context(POLICY), newest=by_event)
    assert done.outcome is Outcome.REPLICATED, done
    assert rig.target.versions(DST, "k")[0].is_delete_marker  # newest first
    # The other way round: the PUT again (a retry), the marker's replica now the newest.
    after = (second, 1, marker_version)
    again = replace(put, src_mtime=second + 0.239)
    assert (await execute(again, rig.context(POLICY), newest=after)).note == "superseded"
    assert copied.target_version in {v.version_id for v in rig.target.versions(DST, "k")}
    assert rig.target.live(DST) == {}, "the marker stays on top"
