"""A completion batch whose write fails while the engine shuts down.

A full state disk fails the batch the recorder is writing just as shutdown
cancels the recorder's loop. CI saw asyncio print that failure as "Task
exception was never retrieved", a traceback in the engine's log."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence
from typing import Any

from engine.errors import StateError
from engine.model import Completion, Op, Outcome, Task
from engine.replication.dispatcher import Recorder
from engine.shielded import shielded


class FullDisk:
    """A queue whose batch write waits for `gate`, then fails as a full disk does."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.gate = asyncio.Event()
        self.batches: list[list[int]] = []

    async def complete(self, done: Sequence[Completion]) -> None:
        self.batches.append([c.task.id for c in done])
        self.started.set()
        await self.gate.wait()
        raise StateError("state database x.db: the disk is full")


def _done(n: int) -> Completion:
    return Completion(
        Task(policy="p1", key=f"k{n}", version_id="v", op=Op.PUT, id=n), Outcome.REPLICATED
    )


async def test_a_batch_failing_after_the_loop_is_cancelled_is_kept_and_not_reported_unread() -> (
    None
):
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: reported.append(context))
    queue = FullDisk()
    recorder = Recorder(queue, lambda _: None, interval=0.01)  # type: ignore[arg-type]
    loop_task = asyncio.create_task(recorder.run())
    recorder.add(_done(1))
    recorder.add(_done(2))
    await asyncio.wait_for(queue.started.wait(), 5)
    loop_task.cancel()
    await asyncio.sleep(0)  # the cancel reaches the loop while its write is still running
    assert not loop_task.done(), "the loop waits for the write it started"
    queue.gate.set()
    await asyncio.gather(loop_task, return_exceptions=True)
    assert loop_task.cancelled()
    gc.collect()  # an unread failure is reported when its task is collected
    await asyncio.sleep(0)
    assert reported == []
    assert queue.batches == [[1, 2]]
    queue.gate.clear()
    queue.started.clear()
    # The unrecorded batch is still in hand: shutdown's own flush tries it again, and fails loudly.
    flushing = asyncio.create_task(recorder.flush())
    await asyncio.wait_for(queue.started.wait(), 5)
    assert queue.batches[-1] == [1, 2]
    queue.gate.set()
    try:
        await flushing
    except StateError as error:
        assert "the disk is full" in str(error)
    else:
        raise AssertionError("the failed write was not reported to the caller")


async def test_shielded_returns_the_result_and_raises_the_error_to_a_caller_still_waiting() -> None:
    async def answer() -> int:
        return 42

    async def broken() -> int:
        raise StateError("no room")

    assert await shielded(answer()) == 42
    try:
        await shielded(broken())
    except StateError as error:
        assert str(error) == "no room"
    else:
        raise AssertionError("the error was swallowed")
