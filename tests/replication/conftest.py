"""A replication rig without servers: two MemoryStores, the real queue, dispatcher and recorder.

What the engine composes per target (engine/engine.py), minus aliases, the reload loop
and the detector's timers: a test scans when it chooses and waits for the dispatcher
to settle, so each step is deterministic and the whole runs in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from engine.model import Counts, Task, TaskState
from engine.policy import Policy
from engine.replication.dispatcher import Dispatcher, Recorder, Route
from engine.replication.health import Link
from engine.replication.scanner import ScanResult, scan
from engine.replication.transfer import TransferContext
from engine.retry import RetryPolicy
from engine.s3.memory import MIN_PART, MemoryStore
from engine.state.sqlite.database import Database, open_db
from engine.state.sqlite.policies import SQLitePolicyStore
from engine.state.sqlite.queue import SQLiteQueue

SRC, DST = "src-bucket", "dst-bucket"
POLICY = Policy("p1", 1, "src", SRC, "dst", DST, created_at=1.0)  # every operation


def policy(**changes: object) -> Policy:
    return replace(POLICY, **changes)  # type: ignore[arg-type]


def reverse(p: Policy, **changes: object) -> Policy:
    """The policy replicating p's target back into p's source."""
    return policy(
        id="p2",
        priority=2,
        source_alias=p.target_alias,
        source_bucket=p.target_bucket,
        target_alias=p.source_alias,
        target_bucket=p.source_bucket,
        **changes,
    )


def origin(store: MemoryStore, bucket: str) -> str:
    return f"{urlsplit(store.endpoint).netloc}/{bucket}"


async def until(check: Callable[[], object], within: float = 10.0) -> object:
    """Wait until `check()` (or what it returns, awaited) is truthy; fail at the deadline."""
    deadline = time.monotonic() + within
    while True:
        found = check()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s: {found!r}")
        await asyncio.sleep(0.005)


class Clock:
    """A settable time for the stores: versions are stamped with it."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    source: MemoryStore
    target: MemoryStore
    db: Database
    queue: SQLiteQueue
    recorder: Recorder
    dispatcher: Dispatcher
    links: dict[str, Link]
    policies: dict[str, Policy] = field(default_factory=dict)

    def store(self, alias: str) -> MemoryStore:
        return {"src": self.source, "dst": self.target}[alias]

    def context(self, p: Policy) -> TransferContext:
        source, target = self.store(p.source_alias), self.store(p.target_alias)
        return TransferContext(
            policy=p,
            source=source,
            target=target,
            source_origin=origin(source, p.source_bucket),
            target_origin=origin(target, p.target_bucket),
            part_size=MIN_PART,
            stream_from=MIN_PART,
            multipart_from=2 * MIN_PART,
        )

    async def add(self, p: Policy) -> Policy:
        """Store the policy (a resync needs its row) and give the dispatcher its route."""
        p = await SQLitePolicyStore(self.db).add(p)
        self.policies[p.id] = p
        links = self.links[p.source_alias], self.links[p.target_alias]
        self.dispatcher.routes[p.id] = Route(self.context(p), *links, p.priority)
        return p

    def hold(self, p: Policy, held: bool = True) -> None:
        """Keep the dispatcher off the policy's tasks (a paused policy), to look at them."""
        self.dispatcher.routes[p.id].active = not held
        self.dispatcher.wake()

    async def scan(self, p: Policy, reverse: Sequence[str] = ()) -> ScanResult:
        ctx = self.context(p)
        return await scan(p, ctx.source, ctx.target, self.queue, reverse)

    async def settle(self, within: float = 20.0) -> dict[str, Counts]:
        """Wake the dispatcher; wait until no task is pending, running or waiting to retry."""
        deadline = time.monotonic() + within
        self.dispatcher.wake()
        while True:
            if not self.dispatcher.busy:
                await self.recorder.flush()
                # Queue reads share the connection without the transaction lock, so one
                # can land inside the recorder's `complete` and see a task neither in
                # flight nor counted yet: read between transactions.
                async with self.db.tx():
                    counts = await self.queue.counts()
                if all(c.pending + c.in_flight + c.retrying == 0 for c in counts.values()):
                    return counts
            if time.monotonic() > deadline:
                raise AssertionError(f"tasks left after {within}s: {await self.queue.counts()}")
            await asyncio.sleep(0.005)

    async def sync(self, *policies: Policy) -> dict[str, Counts]:
        """One scan of each policy (knowing each other's echoes), then every task run."""
        for p in policies:
            echoes = [q.id for q in policies if (q.source, q.target) == (p.target, p.source)]
            await self.scan(p, echoes)
        return await self.settle()

    async def failed(self) -> list[Task]:
        return await self.queue.tasks(states=[TaskState.FAILED])


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def rig(tmp_path: Path, clock: Clock) -> AsyncIterator[Rig]:
    db = await open_db(tmp_path / "state.db")
    queue = SQLiteQueue(db)
    source = MemoryStore("memory://source:9000", (SRC,), clock=clock)
    target = MemoryStore("memory://target:9000", (DST,), clock=clock)
    recorder = Recorder(queue, lambda done: None, interval=0.005)
    retry = RetryPolicy(base=0.01, cap=0.05, max_attempts=3)
    dispatcher = Dispatcher("dst", queue, recorder, 4, retry, poll_interval=0.01)
    links = {"src": Link("src", source), "dst": Link("dst", target)}
    loops = [asyncio.create_task(recorder.run()), asyncio.create_task(dispatcher.run())]
    try:
        yield Rig(source, target, db, queue, recorder, dispatcher, links)
    finally:
        await dispatcher.drain(0)
        for loop in loops:
            loop.cancel()
        for loop in loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        await recorder.flush()
        await db.close()
