"""Change detection and dispatch one step at a time: `Detector.sync_once`, `Dispatcher.claim_once`.

The engine's loops only wait between these steps, so the tests call the steps
directly, on the pair's real servers, and look at the queue and the target after each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from engine.aliases import Alias
from engine.config import EngineConfig
from engine.model import Completion, Op, TaskState
from engine.policy import Policy
from engine.replication.detector import Detector
from engine.replication.dispatcher import Dispatcher, Recorder, Route
from engine.replication.health import Link
from engine.replication.scanner import scan
from engine.retry import RetryPolicy
from engine.s3.client import ListedVersion, S3Client
from engine.state.queue import TaskQueue
from engine.state.sqlite.policies import SQLitePolicyStore
from engine.state.stores import PolicyStore
from tests.conftest import Rig, until


@dataclass
class Parts:
    """What a Detector reads of the engine that runs it (its Topology), around a rig."""

    config: EngineConfig
    policies: dict[str, Policy]
    links: dict[str, Link]
    clients: dict[str, S3Client]
    aliases: dict[str, Alias]
    dispatchers: dict[str, Dispatcher]
    queue: TaskQueue
    store: PolicyStore
    recorder: Recorder
    done: list[Completion]

    @property
    def dispatcher(self) -> Dispatcher:
        return self.dispatchers["dst"]


def parts(rig: Rig, scan_interval: float = 3600.0, poll: float = 0.5, workers: int = 4) -> Parts:
    links = {"src": Link("src", rig.source), "dst": Link("dst", rig.target)}
    done: list[Completion] = []
    recorder = Recorder(rig.queue, done.append)
    dispatcher = Dispatcher("dst", rig.queue, recorder, workers, RetryPolicy(), poll_interval=poll)
    dispatcher.routes["p1"] = Route(rig.ctx, links["src"], links["dst"], priority=1)
    return Parts(
        EngineConfig(rig.pair.state_dir, scan_interval=scan_interval, events=False),
        {"p1": rig.policy},
        links,
        {"src": rig.source, "dst": rig.target},
        {},
        {"dst": dispatcher},
        rig.queue,
        SQLitePolicyStore(rig.db),
        recorder,
        done,
    )


@contextlib.asynccontextmanager
async def running(engine: Parts) -> AsyncIterator[None]:
    """The dispatcher's loop and its recorder's, as the engine runs them."""
    loops = [
        asyncio.create_task(engine.dispatcher.run()),
        asyncio.create_task(engine.recorder.run()),
    ]
    try:
        yield
    finally:
        await engine.dispatcher.drain(grace=10)
        for loop in loops:
            loop.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        await engine.recorder.flush()


async def queued(rig: Rig) -> list[tuple[str, Op]]:
    return sorted((t.key, t.op) for t in await rig.queue.tasks("p1"))


async def replicated(rig: Rig) -> set[str]:
    """Keys with a replica on record."""
    return {r.key for r in await rig.queue.replicas(["p1"], "", None)}


def on_target(rig: Rig) -> Any:
    """The target's live keys, listed off the event loop."""
    return asyncio.to_thread(lambda: set(rig.pair.target_latest()))


# -- Detector.sync_once -------------------------------------------------------------------


async def test_sync_once_scans_in_full_first_then_only_the_hinted_keys(rig: Rig) -> None:
    rig.pair.seed("k", 3, 16)
    detector = Detector(parts(rig))
    first = await detector.sync_once(rig.policy)
    assert (first.full, first.keys, first.enqueued, first.error) == (True, 3, 3, None)
    assert detector.scan_count == {"p1": 1} and "p1" in detector.scanned_at

    rig.pair.put("hinted", b"x")
    rig.pair.put("unhinted", b"y")
    step = await detector.sync_once(rig.policy, {"hinted"})
    assert (step.full, step.keys, step.enqueued) == (False, 1, 1)
    assert detector.scan_count == {"p1": 1}, "a hinted scan is not a full one"
    assert await queued(rig) == [(k, Op.PUT) for k in ("hinted", "k0000", "k0001", "k0002")]

    many = {f"nothing-{n}" for n in range(101)}  # more hints than one-key scans are worth
    step = await detector.sync_once(rig.policy, many)
    assert (step.full, step.keys, step.enqueued) == (True, 5, 1)
    assert detector.scan_count == {"p1": 2}


async def test_sync_once_returns_a_failure_logs_it_once_and_clears_it(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    missing = Policy("p1", 1, "src", f"{rig.pair.src_bucket}-later", "dst", rig.pair.dst_bucket)
    detector = Detector(parts(rig, scan_interval=0.0))  # every step a full scan
    with caplog.at_level(logging.WARNING, logger="mirrorline.engine"):
        failed = [await detector.sync_once(missing) for _ in range(3)]
    assert all(r.full and r.error is not None for r in failed)
    assert "NoSuchBucket" in detector.scan_error["p1"]
    assert [r.getMessage() for r in caplog.records].count(f"scan p1 failed: {failed[0].error}") == 1
    assert "p1" not in detector.scan_count

    rig.pair.src.make_bucket(missing.source_bucket)
    fixed = await detector.sync_once(missing)
    assert (fixed.full, fixed.error) == (True, None)
    assert detector.scan_error == {} and detector.scan_count == {"p1": 1}


async def test_sync_once_wakes_the_dispatcher_that_copies(rig: Rig) -> None:
    rig.pair.seed("k", 5, 16)
    engine = parts(rig, poll=3600)  # the dispatcher moves only when told
    async with running(engine):
        await Detector(engine).sync_once(rig.policy)
        keys = {f"k{n:04}" for n in range(5)}
        await until(lambda: len(engine.done) == 5, 20)
    assert await replicated(rig) == keys == await on_target(rig)
    assert await queued(rig) == []


# -- scan: a page at a time ----------------------------------------------------------------


class Held:
    """The source, its listing held after its first page until `resume` is set."""

    def __init__(self, source: S3Client, page_size: int) -> None:
        self._source = source
        self._page_size = page_size
        self.resume = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._source, name)

    async def list_versions(
        self, bucket: str, prefix: str = "", key_marker: str = "", page_size: int = 1000
    ) -> AsyncIterator[list[ListedVersion]]:
        async for page in self._source.list_versions(bucket, prefix, key_marker, self._page_size):
            yield page
            await self.resume.wait()


async def test_copies_start_while_the_scan_is_still_listing(rig: Rig) -> None:
    rig.pair.seed("k", 30, 16)
    engine = parts(rig, poll=3600)  # only a wake makes the dispatcher claim
    source = Held(rig.source, page_size=15)
    told: list[int] = []
    async with running(engine):

        def enqueued() -> None:
            told.append(len(told))
            engine.dispatcher.wake()

        listing = asyncio.create_task(
            scan(rig.policy, source, rig.target, rig.queue, chunk_keys=10, on_enqueued=enqueued)  # type: ignore[arg-type]
        )
        # The listing waits after its first page (15 keys): the first 10 are queued by then.
        copied = await until(lambda: replicated(rig), 20)
        assert not listing.done() and told == [0]
        assert copied <= {f"k{n:04}" for n in range(10)}
        source.resume.set()
        result = await listing
        assert (result.keys, result.enqueued, told) == (30, 30, [0, 1, 2])
        await until(lambda: len(engine.done) == 30)
    assert await on_target(rig) == {f"k{n:04}" for n in range(30)}


# -- Dispatcher.claim_once ----------------------------------------------------------------


async def test_claim_once_fills_the_free_slots_one_task_per_key_at_a_time(rig: Rig) -> None:
    versions = [rig.pair.put("a-same", str(n).encode()) for n in range(3)]
    rig.pair.seed("other", 3, 16)
    await Detector(parts(rig)).sync_once(rig.policy)
    engine = parts(rig, workers=4)
    assert await engine.dispatcher.claim_once() == 4  # oldest first: all of "a-same", one other
    assert await engine.dispatcher.claim_once() == 0, "no free slot"
    await until(lambda: len(engine.done) == 4)
    # Three tasks of one key: they ran one after another, in the order they were written.
    assert [c.task.version_id for c in engine.done if c.task.key == "a-same"] == versions
    assert await engine.dispatcher.claim_once() == 2
    await until(lambda: len(engine.done) == 6)
    await engine.recorder.flush()
    assert await queued(rig) == []
    assert rig.pair.target_latest()["a-same"] == b"2"


async def test_claim_once_leaves_a_paused_or_unreachable_policy_queued(rig: Rig) -> None:
    rig.pair.seed("k", 3, 16)
    await Detector(parts(rig)).sync_once(rig.policy)
    engine = parts(rig)
    route = engine.dispatcher.routes["p1"]
    route.active = False
    assert await engine.dispatcher.claim_once() == 0
    route.active = True
    engine.links["dst"].mark_offline("test: unreachable")
    assert await engine.dispatcher.claim_once() == 0
    states = {t.state for t in await rig.queue.tasks("p1")}
    assert states == {TaskState.PENDING} and len(await queued(rig)) == 3
    engine.links["dst"].mark_online()
    assert await engine.dispatcher.claim_once() == 3
    await until(lambda: len(engine.done) == 3)
