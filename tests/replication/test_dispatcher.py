"""The dispatcher over MemoryStores: per-key order, retries, parking, dead links."""

from __future__ import annotations

import asyncio
import math
import os

from engine.errors import StateError, TransientError
from engine.replication.dispatcher import Dispatcher, Route
from engine.retry import RetryPolicy
from engine.s3.memory import MIN_PART, Call, fail
from engine.s3.origin import ORIGIN_VERSION
from tests.replication.conftest import DST, POLICY, SRC, Rig, until


async def test_tasks_of_one_key_run_one_at_a_time_in_queue_order(rig: Rig) -> None:
    await rig.add(POLICY)
    versions = [(await rig.source.put(SRC, "k", str(n).encode(), {}))[0] for n in range(3)]
    await rig.source.put(SRC, "other", b"o", {})
    gate = asyncio.Event()

    async def hold_k(call: Call) -> None:
        if call.op == "put" and call.key == "k":
            await gate.wait()

    rig.target.hook = hold_k
    await rig.scan(POLICY)
    rig.dispatcher.wake()
    await until(lambda: rig.target.live(DST) == {"other": b"o"})  # other keys go on meanwhile
    held = [c for c in rig.target.calls if c.op == "put" and c.key == "k"]
    assert len(held) == 1, "the key's next version waits for the one in flight"
    gate.set()
    await rig.settle()
    copied = [v.metadata[ORIGIN_VERSION] for v in reversed(rig.target.versions(DST, "k"))]
    assert copied == versions, "the target's versions come in the source's order"


async def test_a_transient_error_is_retried_then_the_copy_lands(rig: Rig) -> None:
    await rig.add(POLICY)
    await rig.source.put(SRC, "k", b"x", {})
    rig.target.hook = fail(TransientError("PUT: SlowDown"), op="put", times=2)
    await rig.scan(POLICY)
    counts = await rig.settle()
    assert (counts["p1"].replicated, counts["p1"].failed) == (1, 0)
    assert rig.target.live(DST) == {"k": b"x"}
    assert [c.op for c in rig.target.calls].count("put") == 3


async def test_retries_give_up_after_the_attempt_budget(rig: Rig) -> None:
    await rig.add(POLICY)
    await rig.source.put(SRC, "k", b"x", {})
    rig.target.hook = fail(TransientError("PUT: InternalError"), op="put", times=math.inf)
    await rig.scan(POLICY)
    counts = await rig.settle()
    (task,) = await rig.failed()
    assert counts["p1"].failed == 1 and task.attempts == 3  # the rig's RetryPolicy
    assert (task.error_class, task.last_error) == (
        "retryable",
        "gave up after 3 attempts: PUT: InternalError",
    )
    assert [a.kind for a in await rig.queue.attempts(task.id)] == ["retryable"] * 3


async def test_a_permanent_error_parks_the_task_at_once(rig: Rig) -> None:
    await rig.add(POLICY)
    await rig.source.put(SRC, "k", b"x", {})
    await rig.scan(POLICY)
    del rig.target.buckets[DST]  # the target bucket vanishes: NoSuchBucket
    await rig.settle()
    (task,) = await rig.failed()
    assert (task.attempts, task.error_class) == (1, "permanent")
    assert "NoSuchBucket" in task.last_error


async def test_a_fault_in_a_multipart_copy_is_retried_not_parked_as_a_bug(rig: Rig) -> None:
    await rig.add(POLICY)
    data = os.urandom(MIN_PART + 10)
    await rig.source.put(SRC, "big", data, {})
    rig.target.hook = fail(TransientError("part: connection reset"), op="upload_part", nth=2)
    await rig.scan(POLICY)
    counts = await rig.settle()
    assert (counts["p1"].replicated, counts["p1"].failed) == (1, 0)
    assert rig.target.live(DST) == {"big": data} and rig.target.uploads == {}


async def test_a_dropped_connection_takes_the_link_offline_and_gives_the_task_back(
    rig: Rig,
) -> None:
    await rig.add(POLICY)
    await rig.source.put(SRC, "k", b"x", {})
    rig.target.hook = fail(rig.target.unreachable(), op="put")
    await rig.scan(POLICY)
    rig.dispatcher.wake()
    link = rig.links["dst"]
    await until(lambda: not link.online)
    assert "connection refused" in link.last_error

    async def given_back() -> bool:
        return (await rig.queue.counts())["p1"].pending == 1

    await until(given_back)
    counts = (await rig.queue.counts())["p1"]
    assert (counts.failed, counts.retrying, counts.in_flight) == (0, 0, 0)
    (task,) = await rig.queue.tasks()
    assert task.attempts == 0, "no attempt is burnt on a dead link"
    await rig.links["dst"].probe()  # the probe finds it back (the fault is spent)
    counts = await rig.settle()
    assert counts["p1"].replicated == 1 and rig.target.live(DST) == {"k": b"x"}


async def test_a_queue_that_cannot_record_a_failure_stops_the_dispatcher_with_the_reason(
    rig: Rig,
) -> None:
    """A full state disk while a task's failure is being recorded: the dispatcher's loop
    ends with that StateError (the engine stops on it), not a "crashed" traceback."""
    await rig.add(POLICY)
    rig.hold(POLICY)
    await rig.source.put(SRC, "k", b"x", {})
    rig.target.hook = fail(TransientError("PUT: SlowDown"), op="put", times=math.inf)
    await rig.scan(POLICY)

    async def full(*_: object) -> None:
        raise StateError("state database x.db: the disk is full")

    rig.queue.retry_later = full  # type: ignore[method-assign]
    route = rig.dispatcher.routes[POLICY.id]
    own = Dispatcher("dst", rig.queue, rig.recorder, 2, RetryPolicy(base=0.01, max_attempts=3))
    own.routes[POLICY.id] = Route(route.context, route.source_link, route.target_link, 0)
    try:
        await asyncio.wait_for(own.run(), 5)
    except StateError as error:
        assert "the disk is full" in str(error)
    else:
        raise AssertionError("the dispatcher went on without recording the failure")
    assert not own.in_flight
