"""Dispatch: lease tasks from the queue and run them on a target's workers.

One Dispatcher per target endpoint bounds its concurrency. Two tasks for the
same key never run at once: a task whose key is busy waits in a per-key line
behind it, in queue order. A policy whose source or target link is offline, or
that is paused, is simply not claimed from, so no attempt is burnt on a dead
link. Finished tasks are recorded in batches (one transaction per ~50 ms)
because per-object writes would cost more CPU than the copy path itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from engine.errors import MirrorlineError, StateError, reason_code
from engine.model import Completion, Newest, Task
from engine.replication.health import Link
from engine.replication.transfer import TransferContext, execute
from engine.retry import RetryPolicy
from engine.shielded import shielded
from engine.state.queue import TaskQueue

log = logging.getLogger("mirrorline.scheduler")

Key = tuple[str, str]  # (policy, object key)


class Recorder:
    """Batches completions into one queue transaction; flushes on demand at shutdown."""

    def __init__(
        self, queue: TaskQueue, on_done: Callable[[Completion], None], interval: float = 0.05
    ) -> None:
        self._queue = queue
        self._on_done = on_done
        self._interval = interval
        self._pending: list[Completion] = []
        self._kick = asyncio.Event()

    def add(self, completion: Completion) -> None:
        self._pending.append(completion)
        self._on_done(completion)
        if len(self._pending) >= 256:
            self._kick.set()

    async def flush(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            try:
                await self._queue.complete(batch)
            except BaseException:
                self._pending[:0] = batch  # unrecorded: the next flush tries them again
                raise

    async def run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), self._interval)
            self._kick.clear()
            await shielded(self.flush())


@dataclass
class Route:
    """What a dispatcher needs to run one policy's tasks."""

    context: TransferContext
    source_link: Link
    target_link: Link
    priority: int
    active: bool = True

    @property
    def ready(self) -> bool:
        return self.active and self.source_link.online and self.target_link.online


@dataclass
class InFlight:
    """A running transfer, as status shows it."""

    task: Task
    started_at: float = field(default_factory=time.time)
    bytes_done: int = 0

    def progress(self, nbytes: int) -> None:
        self.bytes_done += nbytes


class Dispatcher:
    """Feeds one target endpoint's workers from the queue."""

    def __init__(
        self,
        name: str,
        queue: TaskQueue,
        recorder: Recorder,
        workers: int,
        retry: RetryPolicy,
        lease_seconds: float = 600.0,
        poll_interval: float = 0.5,
        on_error: Callable[[Task, MirrorlineError], None] = lambda task, error: None,
    ) -> None:
        self.name = name
        self.routes: dict[str, Route] = {}
        self.in_flight: dict[int, InFlight] = {}
        self._queue = queue
        self._recorder = recorder
        self._workers = workers
        self._retry = retry
        self._lease = lease_seconds
        self._poll = poll_interval
        self._on_error = on_error
        self._lines: dict[Key, deque[Task]] = {}
        self._newest: dict[Key, Newest] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._draining = False
        self._broken: BaseException | None = None
        self.starved: set[str] = set()  # policies the last claim found nothing ready for

    def wake(self) -> None:
        self._wake.set()

    def _held(self) -> int:
        return sum(len(line) for line in self._lines.values())

    def _claimable(self) -> list[str]:
        ready = [(r.priority, pid) for pid, r in self.routes.items() if r.ready]
        return [pid for _, pid in sorted(ready, reverse=True)]

    @property
    def busy(self) -> bool:
        return bool(self._lines)

    def working_on(self, policy: str) -> bool:
        """Whether any of `policy`'s tasks is held here (running or waiting behind its key)."""
        return any(pid == policy for pid, _ in self._lines)

    async def claim_once(self) -> int:
        """Lease what the free slots allow and start it; returns how many tasks were claimed.

        Claims go in batches: waiting for a quarter of the slots to free up turns one
        transaction (and one replica-map lookup) per object into one per batch.
        """
        batch = max(1, self._workers // 4)
        free = self._workers - self._held()
        if self._draining or not (free >= batch or (free > 0 and not self._lines)):
            return 0
        claimable = self._claimable()
        tasks = await self._queue.claim(claimable, free, self._lease)
        if len(tasks) < free:  # room was left: whoever got nothing had nothing claimable
            self.starved = set(claimable) - {t.policy for t in tasks}
        if tasks:
            await self._admit(tasks)
        return len(tasks)

    def busy_keys(self, policy: str) -> list[str]:
        """The policy's keys with a transfer running, the longest-running first."""
        running = sorted(self.in_flight.values(), key=lambda f: f.started_at)
        return list(dict.fromkeys(f.task.key for f in running if f.task.policy == policy))

    def queued_behind(self, policy: str) -> list[str]:
        """Keys of the policy with a newer task waiting in line behind a running one."""
        return [key for (pid, key), line in self._lines.items() if pid == policy and len(line) > 1]

    async def run(self) -> None:
        while not self._draining:
            if self._broken is not None:
                raise self._broken
            self._wake.clear()  # before claiming: a wake during the claim is not lost
            if not await self.claim_once():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._poll)

    async def _admit(self, tasks: Sequence[Task]) -> None:
        by_policy: dict[str, list[str]] = {}
        for task in tasks:
            by_policy.setdefault(task.policy, []).append(task.key)
        for policy, keys in by_policy.items():
            for key, newest in (await self._queue.newest_replicas(policy, keys)).items():
                self._newest[(policy, key)] = max(self._newest.get((policy, key), newest), newest)
        if self._draining:
            # The drain began while this claim was out: it waits only for the transfers it
            # saw, and the engine closes the state after it, so these go back instead.
            await self._queue.release(tasks)
            return
        for task in tasks:
            line = self._lines.setdefault((task.policy, task.key), deque())
            line.append(task)
            if len(line) == 1:
                self._start(task)

    def _start(self, task: Task) -> None:
        runner = asyncio.create_task(self._run_one(task), name=f"task-{task.id}")
        self._running.add(runner)
        runner.add_done_callback(self._finished)

    def _finished(self, runner: asyncio.Task[None]) -> None:
        self._running.discard(runner)
        if not runner.cancelled() and (exc := runner.exception()) is not None:
            # The queue could not record how a task ended (its disk is full): claiming
            # more would copy what cannot be remembered, so `run` stops with the reason.
            self._broken = exc
            self._wake.set()

    async def _run_one(self, task: Task) -> None:
        key = (task.policy, task.key)
        self.in_flight[task.id] = running = InFlight(task)
        try:
            route = self.routes.get(task.policy)
            if route is None:
                await self._queue.release([task])
                return
            try:
                done = await execute(task, route.context, self._newest.get(key), running.progress)
            except MirrorlineError as error:
                await self._failed(task, error, route)
            else:
                if done.target_version:
                    landed = (task.src_mtime, task.seq, task.version_id)
                    self._newest[key] = max(self._newest.get(key, landed), landed)
                self._recorder.add(done)
        except asyncio.CancelledError:
            await shielded(self._queue.release([task]))
            raise
        except StateError:
            raise
        except Exception as exc:
            log.exception("task %s crashed", task.id)
            reason = f"internal error: {type(exc).__name__}: {exc}"
            await self._queue.fail(task, reason, "bug", type(exc).__name__)
        finally:
            self.in_flight.pop(task.id, None)
            self._next_in_line(key)

    def _next_in_line(self, key: Key) -> None:
        line = self._lines.get(key)
        if line:
            line.popleft()
            if line and not self._draining:
                self._start(line[0])
                return
        if not line:
            self._lines.pop(key, None)
            self._newest.pop(key, None)
        self._wake.set()

    async def _failed(self, task: Task, error: MirrorlineError, route: Route) -> None:
        self._on_error(task, error)
        if error.link_down:
            # The link is down, not the task: give it back whole and stop claiming.
            for link in (route.source_link, route.target_link):
                if error.endpoint == link.client.endpoint:
                    link.mark_offline(error.reason)
            await self._queue.release([task])
        elif error.retryable and not self._retry.exhausted(task.attempts):
            delay = self._retry.next_delay(task.attempts)
            await self._queue.retry_later(
                task, error.reason, error.kind, time.time() + delay, reason_code(error)
            )
        else:
            reason = error.reason
            if error.retryable:
                reason = f"gave up after {task.attempts} attempts: {reason}"
            await self._queue.fail(task, reason, error.kind, reason_code(error))

    async def drain(self, grace: float) -> None:
        """Stop claiming; let running transfers finish for `grace` seconds, then cancel them."""
        self._draining = True
        self._wake.set()
        if self._running:
            _, late = await asyncio.wait(set(self._running), timeout=grace)
            for runner in late:
                runner.cancel()
            if late:
                await asyncio.wait(late)
        await self._queue.release([task for line in self._lines.values() for task in line])
        self._lines.clear()
