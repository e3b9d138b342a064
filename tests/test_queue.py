"""The queue's contract: state transitions, dedupe, leases, O(1) counters."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest

from engine.model import Completion, NewTask, Op, Outcome, TaskState
from engine.state.sqlite.database import open_db
from engine.state.sqlite.queue import SQLiteQueue


@pytest.fixture
async def queue(tmp_path):
    q = SQLiteQueue(await open_db(tmp_path / "state.db"))
    yield q
    await q.close()


def new(key: str, policy: str = "p1", size: int = 10, version: str = "v1") -> NewTask:
    return NewTask(policy=policy, key=key, version_id=version, op=Op.PUT, size=size)


async def test_enqueue_deduplicates_identical_tasks(queue):
    assert await queue.enqueue([new("a"), new("b"), new("a")]) == 2
    assert await queue.enqueue([new("a"), new("a", version="v2")]) == 1
    counts = (await queue.counts())["p1"]
    assert (counts.pending, counts.pending_bytes) == (3, 30)


async def test_claim_leases_oldest_first_and_counts_follow(queue):
    await queue.enqueue([new(k) for k in "abcde"])
    claimed = await queue.claim(["p1"], 3, lease_seconds=60)
    assert [t.key for t in claimed] == ["a", "b", "c"]
    assert all(t.state is TaskState.IN_FLIGHT and t.attempts == 1 for t in claimed)
    counts = (await queue.counts())["p1"]
    assert (counts.pending, counts.in_flight, counts.in_flight_bytes) == (2, 3, 30)
    assert await queue.claim(["other"], 10, 60) == []


async def test_complete_removes_tasks_counts_totals_and_records_replicas(queue):
    await queue.enqueue([new("a", size=7), new("b", size=5)])
    a, b = await queue.claim(["p1"], 10, 60)
    await queue.complete(
        [
            Completion(a, Outcome.REPLICATED, bytes=7, target_version="t-a"),
            Completion(b, Outcome.SKIPPED, target_version=""),
        ]
    )
    counts = (await queue.counts())["p1"]
    assert (counts.in_flight, counts.pending, counts.replicated, counts.replicated_bytes) == (
        0,
        0,
        1,
        7,
    )
    assert counts.skipped == 1
    rows = await queue.replicas(["p1"], "", None)
    assert [(r.key, r.target_version) for r in rows] == [("a", "t-a"), ("b", None)]
    assert await queue.tasks("p1") == []


async def test_retry_waits_for_backoff_then_fail_waits_for_operator(queue):
    await queue.enqueue([new("a")])
    (task,) = await queue.claim(["p1"], 1, 60)
    await queue.retry_later(task, "GET: SlowDown", "retryable", at=time.time() + 3600)
    assert await queue.claim(["p1"], 1, 60) == []
    assert (await queue.counts())["p1"].retrying == 1
    await queue.retry_later(task, "GET: SlowDown", "retryable", at=time.time() - 1)
    (again,) = await queue.claim(["p1"], 1, 60)
    assert again.attempts == 2 and again.last_error == "GET: SlowDown"
    await queue.fail(again, "PUT: AccessDenied", "permanent")
    assert await queue.claim(["p1"], 1, 60) == []
    (failed,) = await queue.tasks("p1", [TaskState.FAILED])
    assert failed.error_class == "permanent"
    assert await queue.requeue("p1") == 1
    (fresh,) = await queue.claim(["p1"], 1, 60)
    assert fresh.attempts == 1 and (await queue.counts())["p1"].failed == 0


async def test_recover_returns_leases_left_by_a_crash(tmp_path):
    path = tmp_path / "state.db"
    q = SQLiteQueue(await open_db(path))
    await q.enqueue([new(k) for k in "abc"])
    await q.claim(["p1"], 2, 60)
    await q.close()  # the engine "crashes" with two leases held
    q = SQLiteQueue(await open_db(path))
    assert await q.recover() == 2
    counts = (await q.counts())["p1"]
    assert (counts.pending, counts.in_flight) == (3, 0)
    await q.close()


async def test_release_gives_back_without_burning_an_attempt(queue):
    await queue.enqueue([new("a")])
    claimed = await queue.claim(["p1"], 1, 60)
    await queue.release(claimed)
    (again,) = await queue.claim(["p1"], 1, 60)
    assert again.attempts == 1


async def test_counters_match_an_independent_count_after_mixed_traffic(queue):
    await queue.enqueue([new(f"k{i:03}", policy=f"p{i % 3}", size=i) for i in range(300)])
    for policy in ("p0", "p1", "p2"):
        claimed = await queue.claim([policy], 60, 60)
        await queue.complete([Completion(t, Outcome.REPLICATED, t.size, "x") for t in claimed[:20]])
        for t in claimed[20:30]:
            await queue.fail(t, "boom", "permanent")
        await queue.release(claimed[30:40])
    rows = await queue._db.rows(
        "SELECT policy, state, COUNT(*), SUM(size) FROM tasks GROUP BY policy, state"
    )
    truth = {(r[0], r[1]): (r[2], r[3]) for r in rows}
    counts = await queue.counts()
    for (policy, state), (n, size) in truth.items():
        field = state.replace("-", "_")
        assert getattr(counts[policy], field) == n
        assert getattr(counts[policy], field + "_bytes") == size


async def test_completion_of_a_dropped_policy_records_nothing(queue):
    await queue.enqueue([new("a"), new("b", policy="p2")])
    (task,) = await queue.claim(["p1"], 1, 60)
    (other,) = await queue.claim(["p2"], 1, 60)
    await queue.drop_policy("p1")  # `replicate rm` while the copy was running
    await queue.complete(
        [
            Completion(task, Outcome.REPLICATED, 10, "t-a"),
            Completion(other, Outcome.REPLICATED, 10, "t-b"),
        ]
    )
    counts = await queue.counts()
    assert "p1" not in counts and counts["p2"].replicated == 1
    assert await queue.replicas(["p1"], "", None) == []
    assert [r.key for r in await queue.replicas(["p2"], "", None)] == ["b"]


async def test_enqueue_rechecks_the_replica_map_in_its_transaction(queue):
    await queue.enqueue([new("a")])
    (task,) = await queue.claim(["p1"], 1, 60)
    await queue.complete([Completion(task, Outcome.REPLICATED, 10, "t1")])
    # A scan that read the map before this completion must not queue the copy again...
    assert await queue.enqueue([new("a")]) == 0
    # ...but a scan that saw replica t1 missing on the target re-copies it.
    stale = NewTask(policy="p1", key="a", version_id="v1", op=Op.PUT, target_version="t1")
    assert await queue.enqueue([stale]) == 1
    gone = NewTask(policy="p1", key="a", version_id="v1", op=Op.DELETE_VERSION, target_version="t9")
    assert await queue.enqueue([gone]) == 0, "a version delete needs its replica on record"


async def test_a_transaction_cancelled_while_starting_leaves_none_open(tmp_path: Path) -> None:
    """The console cancels polls and shutdown cancels loops at any await, BEGIN included."""
    db = await open_db(tmp_path / "cancel.db")
    await db.write("CREATE TABLE marks (n INTEGER)")

    async def write(n: int) -> None:
        async with db.tx() as conn:
            await conn.execute("INSERT INTO marks VALUES (?)", (n,))

    for n in range(60):
        task = asyncio.create_task(write(-1))
        for _ in range(n % 3):  # cancel at a different await each time
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await write(n)  # raised "cannot start a transaction within a transaction"
    rows = await db.rows("SELECT n FROM marks WHERE n >= 0 ORDER BY n")
    assert [r[0] for r in rows] == list(range(60))
    await db.close()
