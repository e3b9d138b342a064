"""The replication queue: one interface, backends behind it.

The SQLite backend (engine/state/sqlite/queue.py) serves one engine per state dir.
A PostgreSQL backend for workers on several machines implements the same
methods (claim with `FOR UPDATE SKIP LOCKED`); nothing above this module
knows which one it talks to.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.model import (
    Attempt,
    Cause,
    Completion,
    Counts,
    FailureGroup,
    Newest,
    NewTask,
    Task,
    TaskState,
)


@dataclass(frozen=True, slots=True)
class Replica:
    """What the target holds for one source version (None: deliberately nothing)."""

    key: str
    source_version: str
    target_version: str | None
    src_mtime: float
    seq: int


class TaskQueue(abc.ABC):
    """Durable tasks with leases, O(1) counters and the source->target version map."""

    @abc.abstractmethod
    async def enqueue(self, tasks: Sequence[NewTask]) -> int:
        """Add tasks, ignoring ones already queued; returns how many were new."""

    @abc.abstractmethod
    async def claim(self, policies: Sequence[str], limit: int, lease_seconds: float) -> list[Task]:
        """Lease up to `limit` ready tasks of these policies, oldest first.

        Per-key order is part of the contract: a task whose key has another task in
        flight (leased by this or any other claimer) is never returned, so two tasks
        for one key never run at once. Tasks of one key returned in one batch come in
        the order they were queued; the claimer runs them in that order.
        """

    @abc.abstractmethod
    async def complete(self, done: Sequence[Completion]) -> None:
        """Remove finished tasks, count them and record their replicas, atomically."""

    @abc.abstractmethod
    async def retry_later(
        self, task: Task, error: str, error_class: str, at: float, code: str = ""
    ) -> None:
        """Park a task in backoff until `at`; `code` is the reason code (Task.error_code)."""

    @abc.abstractmethod
    async def fail(self, task: Task, error: str, error_class: str, code: str = "") -> None:
        """Park a task as failed until an operator retries it; `code` as for retry_later."""

    @abc.abstractmethod
    async def release(self, tasks: Sequence[Task]) -> None:
        """Give leased tasks back as pending without counting an attempt (shutdown)."""

    @abc.abstractmethod
    async def recover(self) -> int:
        """Return leases left behind by a crash to pending; returns how many."""

    @abc.abstractmethod
    async def requeue(self, policy: str | None = None, ids: Sequence[int] = ()) -> int:
        """Move failed (and retrying) tasks back to pending with a fresh attempt budget."""

    @abc.abstractmethod
    async def parked(self, ids: Sequence[int], policy: str | None = None) -> set[int]:
        """Which of these task ids are failed or retrying (of `policy`, if given)."""

    @abc.abstractmethod
    async def counts(self) -> dict[str, Counts]:
        """Backlog and totals per policy, read from counters, not by scanning tasks."""

    @abc.abstractmethod
    async def tasks(
        self,
        policy: str | None = None,
        states: Sequence[TaskState] = (),
        limit: int = 100,
        after: int = 0,
        query: str = "",
        descending: bool = False,
        cause: Cause | None = None,
    ) -> list[Task]:
        """A page of tasks in id order, past the cursor `after`; `query` matches key or error.

        `cause`: only the parked (failed or retrying) tasks of that cause, so a
        failure group's tasks can be paged."""

    @abc.abstractmethod
    async def tasks_of_key(self, policies: Sequence[str], key: str) -> list[Task]:
        """Every task of exactly this key under these policies, any state, in id order."""

    @abc.abstractmethod
    async def ahead(self, task: Task) -> int:
        """How many pending tasks of its policy a claim would take before this one.

        Claims go by (next_at, id) per policy; the count must come from an index of
        ready tasks, not a walk of the backlog (say its cost in the backend)."""

    @abc.abstractmethod
    async def failure_groups(self, policy: str | None = None) -> list[FailureGroup]:
        """Failed and retrying tasks grouped by Cause (policy, op, error class, code),
        largest group first; each with counts, bytes, first/last seen and an example."""

    @abc.abstractmethod
    async def replicas(
        self, policies: Sequence[str], low: str, high: str | None, limit: int = -1
    ) -> list[Replica]:
        """Replica map rows with low < key <= high (high None: to the end), keys ascending."""

    @abc.abstractmethod
    async def replicas_of_key(self, policy: str, key: str) -> list[Replica]:
        """Every replica map row of exactly this key, source versions ascending."""

    @abc.abstractmethod
    async def attempts(self, task_id: int) -> list[Attempt]:
        """The task's failed attempts, oldest first."""

    @abc.abstractmethod
    async def replica_of(self, policy: str, key: str, source_version: str) -> str | None:
        """The target version replicating one source version (None: no replica recorded)."""

    @abc.abstractmethod
    async def newest_replicas(self, policy: str, keys: Sequence[str]) -> dict[str, Newest]:
        """Per key, (source mtime, seq, source version) of the newest version the target
        holds (the version, so a same-second tie can be settled by the source's listing)."""

    @abc.abstractmethod
    async def drop_policy(self, policy: str) -> None:
        """Forget a removed policy's tasks, counters and replica map."""

    def subscribe(self, wake: Callable[[], None]) -> None:
        """Call `wake` when another process queues or frees work (shared backends).

        The default does nothing: on a queue only one engine opens, that engine
        knows when it queued something.
        """
        return None

    @abc.abstractmethod
    async def close(self) -> None: ...
