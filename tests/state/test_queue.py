"""The queue's contract: every TaskQueue backend passes the same suite (saq's pattern).

`QueueContract` holds the tests; a backend subclasses it with `open`, the one thing
that differs. What is specific to one backend (SQLite's transaction handling) lives
in that backend's own test module.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from engine.demo.postgres import PgCluster
from engine.model import Cause, Completion, NewTask, Op, Outcome, Task, TaskState
from engine.state import TaskQueue, open_state


def new(key: str, policy: str = "p1", size: int = 10, version: str = "v1") -> NewTask:
    return NewTask(policy=policy, key=key, version_id=version, op=Op.PUT, size=size)


async def every_task(queue: TaskQueue, policy: str) -> list[Task]:
    """All of a policy's tasks, paged through the public interface."""
    found: list[Task] = []
    while page := await queue.tasks(policy, (), 100, found[-1].id if found else 0):
        found += page
    return found


class QueueContract:
    """Subclass with `open(where)`: a fresh or reopened queue at `where`."""

    async def open(self, where: Path) -> TaskQueue:
        raise NotImplementedError

    @pytest.fixture
    async def queue(self, tmp_path: Path):
        q = await self.open(tmp_path / "state")
        yield q
        await q.close()

    async def test_enqueue_deduplicates_identical_tasks(self, queue: TaskQueue) -> None:
        assert await queue.enqueue([new("a"), new("b"), new("a")]) == 2
        assert await queue.enqueue([new("a"), new("a", version="v2")]) == 1
        counts = (await queue.counts())["p1"]
        assert (counts.pending, counts.pending_bytes) == (3, 30)

    async def test_claim_leases_oldest_first_and_counts_follow(self, queue: TaskQueue) -> None:
        await queue.enqueue([new(k) for k in "abcde"])
        claimed = await queue.claim(["p1"], 3, lease_seconds=60)
        assert [t.key for t in claimed] == ["a", "b", "c"]
        assert all(t.state is TaskState.IN_FLIGHT and t.attempts == 1 for t in claimed)
        counts = (await queue.counts())["p1"]
        assert (counts.pending, counts.in_flight, counts.in_flight_bytes) == (2, 3, 30)
        assert await queue.claim(["other"], 10, 60) == []

    async def test_complete_removes_tasks_counts_totals_and_records_replicas(
        self, queue: TaskQueue
    ) -> None:
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

    async def test_retry_waits_for_backoff_then_fail_waits_for_operator(
        self, queue: TaskQueue
    ) -> None:
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

    async def test_recover_returns_leases_left_by_a_crash(self, tmp_path: Path) -> None:
        path = tmp_path / "state"
        q = await self.open(path)
        await q.enqueue([new(k) for k in "abc"])
        await q.claim(["p1"], 2, 60)
        await q.close()  # the engine "crashes" with two leases held
        q = await self.open(path)
        assert await q.recover() == 2
        counts = (await q.counts())["p1"]
        assert (counts.pending, counts.in_flight) == (3, 0)
        await q.close()

    async def test_release_gives_back_without_burning_an_attempt(self, queue: TaskQueue) -> None:
        await queue.enqueue([new("a")])
        claimed = await queue.claim(["p1"], 1, 60)
        await queue.release(claimed)
        (again,) = await queue.claim(["p1"], 1, 60)
        assert again.attempts == 1

    async def test_counters_match_an_independent_count_after_mixed_traffic(
        self, queue: TaskQueue
    ) -> None:
        await queue.enqueue([new(f"k{i:03}", policy=f"p{i % 3}", size=i) for i in range(300)])
        for policy in ("p0", "p1", "p2"):
            claimed = await queue.claim([policy], 60, 60)
            await queue.complete(
                [Completion(t, Outcome.REPLICATED, t.size, "x") for t in claimed[:20]]
            )
            for t in claimed[20:30]:
                await queue.fail(t, "boom", "permanent")
            await queue.release(claimed[30:40])
        truth: dict[tuple[str, str], tuple[int, int]] = {}
        for policy in ("p0", "p1", "p2"):
            for task in await every_task(queue, policy):
                n, size = truth.get((policy, task.state.value), (0, 0))
                truth[(policy, task.state.value)] = (n + 1, size + task.size)
        assert sum(n for n, _ in truth.values()) == 300 - 60
        counts = await queue.counts()
        for (policy, state), (n, size) in truth.items():
            field = state.replace("-", "_")
            assert getattr(counts[policy], field) == n
            assert getattr(counts[policy], field + "_bytes") == size

    async def test_completion_of_a_dropped_policy_records_nothing(self, queue: TaskQueue) -> None:
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

    async def test_enqueue_rechecks_the_replica_map_in_its_transaction(
        self, queue: TaskQueue
    ) -> None:
        await queue.enqueue([new("a")])
        (task,) = await queue.claim(["p1"], 1, 60)
        await queue.complete([Completion(task, Outcome.REPLICATED, 10, "t1")])
        # A scan that read the map before this completion must not queue the copy again...
        assert await queue.enqueue([new("a")]) == 0
        # ...but a scan that saw replica t1 missing on the target re-copies it.
        stale = NewTask(policy="p1", key="a", version_id="v1", op=Op.PUT, target_version="t1")
        assert await queue.enqueue([stale]) == 1
        gone = NewTask(
            policy="p1", key="a", version_id="v1", op=Op.DELETE_VERSION, target_version="t9"
        )
        assert await queue.enqueue([gone]) == 0, "a version delete needs its replica on record"

    async def test_claim_never_leases_a_key_that_is_in_flight(self, queue: TaskQueue) -> None:
        """Per-key order is the queue's promise, not only one dispatcher's memory: two
        tasks for one key never run at once, wherever the claims come from."""
        await queue.enqueue([new("a", version="v1"), new("b")])
        first = await queue.claim(["p1"], 10, 60)
        assert sorted(t.key for t in first) == ["a", "b"]
        await queue.enqueue([new("a", version="v2"), new("c")])
        second = await queue.claim(["p1"], 10, 60)
        assert [t.key for t in second] == ["c"], "a's v2 waits while a's v1 is leased"
        (a1,) = [t for t in first if t.key == "a"]
        await queue.complete([Completion(a1, Outcome.REPLICATED, 10, "t1")])
        (a2,) = await queue.claim(["p1"], 10, 60)
        assert (a2.key, a2.version_id) == ("a", "v2")

    async def test_a_failed_task_does_not_hold_its_key(self, queue: TaskQueue) -> None:
        await queue.enqueue([new("a", version="v1")])
        (a1,) = await queue.claim(["p1"], 10, 60)
        await queue.fail(a1, "AccessDenied", "permanent")
        await queue.enqueue([new("a", version="v2")])
        (a2,) = await queue.claim(["p1"], 10, 60)
        assert a2.version_id == "v2"

    async def test_parked_tasks_keep_their_reason_code(self, queue: TaskQueue) -> None:
        await queue.enqueue([new("a"), new("b")])
        a, b = await queue.claim(["p1"], 2, 60)
        await queue.retry_later(a, "HTTP 503", "retryable", time.time() + 60, code="HTTP503")
        await queue.fail(b, "no bucket", "permanent", code="NoSuchBucket")
        parked = {t.key: t for t in await queue.tasks("p1", [TaskState.FAILED, TaskState.RETRYING])}
        assert parked["a"].cause == Cause("p1", Op.PUT, "retryable", "HTTP503")
        assert parked["b"].cause == Cause("p1", Op.PUT, "permanent", "NoSuchBucket")

    async def test_tasks_of_key_are_every_state_of_exactly_that_key(self, queue: TaskQueue) -> None:
        await queue.enqueue([new("a", version="v1"), new("b"), new("a/b"), new("ab")])
        await queue.enqueue([new("a", policy="p2"), new("a", policy="p3")])
        (first, _) = await queue.claim(["p1"], 2, 60)  # a v1 and b
        await queue.fail(first, "boom", "permanent", code="X")
        await queue.enqueue([new("a", version="v2")])
        found = await queue.tasks_of_key(["p1", "p2"], "a")
        assert [(t.policy, t.version_id, t.state) for t in found] == [
            ("p1", "v1", TaskState.FAILED),
            ("p2", "v1", TaskState.PENDING),
            ("p1", "v2", TaskState.PENDING),
        ]
        assert [t.id for t in found] == sorted(t.id for t in found)
        assert await queue.tasks_of_key([], "a") == []

    async def test_ahead_is_what_claims_take_before_the_task(self, queue: TaskQueue) -> None:
        await queue.enqueue([new(f"k{i:02}") for i in range(12)])
        await queue.enqueue([new(f"k{i:02}", policy="p2") for i in range(5)])
        tasks = await every_task(queue, "p1")
        assert [await queue.ahead(t) for t in tasks[:3]] == [0, 1, 2]
        (held,) = await queue.claim(["p1"], 1, 60)
        await queue.retry_later(held, "later", "retryable", time.time() + 3600)
        await queue.claim(["p1"], 2, 60)
        target = tasks[8]
        n = await queue.ahead(target)
        assert n == 5  # k03..k07: k00 backs off for an hour, k01 and k02 are leased
        taken = await queue.claim(["p1"], n, 60)
        assert target.id not in {t.id for t in taken}
        assert [t.id for t in await queue.claim(["p1"], 1, 60)] == [target.id]

    async def parked_mix(self, queue: TaskQueue) -> dict[Cause, list[Task]]:
        """Three causes over two policies (one of them retrying), among pending tasks."""
        await queue.enqueue([new(f"n{i}", size=3) for i in range(7)])
        await queue.enqueue([new(f"n{i}", policy="p2", size=5) for i in range(4)])
        await queue.enqueue([new(f"pending{i}") for i in range(5)])
        for policy, n, code in (("p1", 5, "NoSuchBucket"), ("p1", 2, "AccessDenied")):
            for t in await queue.claim([policy], n, 60):
                await queue.fail(t, f"PUT {t.key}: {code}", "permanent", code=code)
        for t in await queue.claim(["p2"], 4, 60):
            await queue.retry_later(t, "HTTP 503", "retryable", time.time() + 600, "HTTP503")
        groups: dict[Cause, list[Task]] = {}
        for policy in ("p1", "p2"):
            for t in await every_task(queue, policy):
                if t.state in (TaskState.FAILED, TaskState.RETRYING):
                    groups.setdefault(t.cause, []).append(t)
        return groups

    async def test_failure_groups_sum_parked_tasks_by_cause(self, queue: TaskQueue) -> None:
        expected = await self.parked_mix(queue)
        groups = await queue.failure_groups()
        assert [g.count for g in groups] == sorted((g.count for g in groups), reverse=True)
        assert Counter({g.cause: g.count for g in groups}) == Counter(
            {cause: len(tasks) for cause, tasks in expected.items()}
        )
        for g in groups:
            tasks = expected[g.cause]
            assert g.bytes == sum(t.size for t in tasks)
            assert g.failed == sum(t.state is TaskState.FAILED for t in tasks)
            assert g.example_key in {t.key for t in tasks}
            assert g.first_seen <= g.last_seen <= time.time()
        assert {g.cause.policy for g in await queue.failure_groups("p2")} == {"p2"}
        assert await queue.failure_groups("nobody") == []

    async def test_tasks_of_a_cause_page_through_its_parked_tasks(self, queue: TaskQueue) -> None:
        expected = await self.parked_mix(queue)
        for cause, tasks in expected.items():
            seen: list[Task] = []
            while page := await queue.tasks(None, (), 2, seen[-1].id if seen else 0, cause=cause):
                seen += page
            assert [t.id for t in seen] == [t.id for t in tasks]
        cause = next(iter(expected))
        assert await queue.tasks("p2" if cause.policy == "p1" else "p1", cause=cause) == []

    async def test_replicas_of_key_are_exactly_that_keys_rows(self, queue: TaskQueue) -> None:
        await queue.enqueue([new("a", version="v1"), new("a", version="v2"), new("ab")])
        done = await queue.claim(["p1"], 10, 60)
        await queue.complete(
            [
                Completion(t, Outcome.REPLICATED, target_version="t-" + t.version_id)
                for t in done
                if t.version_id == "v1"
            ]
        )
        later = [t for t in done if t.version_id == "v2"]
        await queue.complete([Completion(t, Outcome.SKIPPED, target_version="") for t in later])
        rows = await queue.replicas_of_key("p1", "a")
        assert [(r.key, r.source_version, r.target_version) for r in rows] == [
            ("a", "v1", "t-v1"),
            ("a", "v2", None),
        ]
        assert await queue.replicas_of_key("p2", "a") == []


class TestSQLiteQueue(QueueContract):
    async def open(self, where: Path) -> TaskQueue:
        return (await open_state(where.with_suffix(".db"))).queue


class TestPostgresQueue(QueueContract):
    """The same contract on the shared backend; `where` names a schema of its own."""

    @pytest.fixture(autouse=True)
    def _cluster(self, pg: PgCluster) -> None:
        self.pg = pg
        self.urls: dict[Path, str] = {}

    async def open(self, where: Path) -> TaskQueue:
        url = self.urls.setdefault(where, self.pg.fresh_url())
        return (await open_state(url)).queue
