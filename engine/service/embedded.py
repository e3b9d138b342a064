"""An engine on a thread of its own, driven through the `Service` interface.

A program with its own event loop (the console) embeds the engine here: the
engine's loop runs on a separate thread, so a burst of copy-path work never
delays the host's loop, and the host never waits on engine I/O. Calls hop to
the engine's loop and are awaited as futures; reading the snapshot is a plain
attribute read (snapshots are immutable and replaced whole).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from engine.aliases import Alias, AliasBook
from engine.checks.report import Difference, PolicyReport
from engine.config import EngineConfig
from engine.engine import Attachment, Engine
from engine.errors import MirrorlineError
from engine.model import Attempt, Cause, FailureGroup, TaskState
from engine.policy import Policy
from engine.service import AliasWriter, AuditEntry, Explanation, PolicySpec, Service, TaskPage
from engine.service.local import LocalService
from engine.telemetry.snapshot import HistoryPoint, Snapshot, Transfer

T = TypeVar("T")


# What runs around the engine on its own loop: set up before it starts (the demo's
# stores), torn down after it drains, yielding the attachments served beside it.
Lifespan = Callable[[], AbstractAsyncContextManager[Sequence[Attachment]]]


class EmbeddedEngine(Service, AliasWriter):
    def __init__(
        self, config: EngineConfig, actor: str = "console", lifespan: Lifespan | None = None
    ) -> None:
        self.engine = Engine(config)
        self._lifespan = lifespan
        self._actor = actor
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._service: LocalService | None = None
        self._stopping = False
        self._finished: Future[None] = Future()
        self._thread = threading.Thread(target=self._main, name="mirrorline-engine", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._run())
        except BaseException as exc:  # noqa: BLE001 - handed to whoever awaits start() or close()
            self._finished.set_exception(exc)
        else:
            self._finished.set_result(None)
        finally:
            self._loop.close()

    async def _run(self) -> None:
        if self._lifespan is None:
            await self.engine.run(self._stop)
            return
        async with self._lifespan() as attachments:
            self.engine.attach(*attachments)
            await self.engine.run(self._stop)

    async def submit(self, work: Awaitable[T]) -> T:
        """Run `work` on the engine's loop (where its attachments live) and await it here."""
        try:
            future = asyncio.run_coroutine_threadsafe(_awaited(work), self._loop)
        except RuntimeError:  # its loop closed: the engine is gone
            if inspect.iscoroutine(work):
                work.close()  # never started: no "never awaited" warning
            raise MirrorlineError("the engine is not running") from None
        return await asyncio.wrap_future(future)

    async def start(self) -> None:
        """Start the engine and wait until it serves; its start-up errors are raised here."""
        self._thread.start()
        ready = asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(self.engine.ready.wait(), self._loop)
        )
        finished = asyncio.wrap_future(self._finished)
        done, _ = await asyncio.wait({ready, finished}, return_when=asyncio.FIRST_COMPLETED)
        if finished in done:
            ready.cancel()
            finished.result()  # raises the engine's start-up error
            raise MirrorlineError("the engine stopped while starting")
        self._service = LocalService(
            self.engine.state,
            AliasBook(self.engine.config.state_dir / "aliases.json"),
            self._actor,
            engine=self.engine,
        )

    async def close(self) -> None:
        """Drain the engine (running copies finish or return to the queue), then stop."""
        self._stopping = True
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            await asyncio.wrap_future(self._finished)

    async def _call(self, work: Callable[[LocalService], Awaitable[T]]) -> T:
        service = self._service
        if service is None or self._finished.done():
            raise MirrorlineError("the engine is not running")
        try:
            return await self.submit(work(service))
        except MirrorlineError:
            raise
        except Exception as exc:
            if not self._stopping:
                raise
            raise MirrorlineError("the engine is stopping") from exc

    async def status(self) -> Snapshot:
        snapshot = self.engine.snapshot
        if snapshot is None:
            return await self._call(lambda s: s.status())
        return snapshot

    async def policies(self) -> list[Policy]:
        return await self._call(lambda s: s.policies())

    async def policy(self, policy_id: str) -> Policy:
        return await self._call(lambda s: s.policy(policy_id))

    async def tasks(
        self,
        states: Sequence[TaskState] = (),
        policy: str | None = None,
        limit: int = 100,
        after: int = 0,
        query: str = "",
        descending: bool = False,
        cause: Cause | None = None,
    ) -> TaskPage:
        return await self._call(
            lambda s: s.tasks(states, policy, limit, after, query, descending, cause)
        )

    async def failure_groups(self, policy: str | None = None) -> list[FailureGroup]:
        return await self._call(lambda s: s.failure_groups(policy))

    async def explain(self, source: str, key: str) -> Explanation:
        return await self._call(lambda s: s.explain(source, key))

    async def attempts(self, task_id: int) -> list[Attempt]:
        return await self._call(lambda s: s.attempts(task_id))

    async def transfers(self) -> list[Transfer]:
        return (await self.status()).transfers

    async def history(self, since: float, policy: str | None = None) -> list[HistoryPoint]:
        return await self._call(lambda s: s.history(since, policy))

    async def set_paused(self, paused: bool, policy: str | None = None) -> None:
        await self._call(lambda s: s.set_paused(paused, policy))

    async def retry(self, ids: Sequence[int] = (), policy: str | None = None) -> int:
        return await self._call(lambda s: s.retry(ids, policy))

    async def add_policy(self, spec: PolicySpec) -> Policy:
        return await self._call(lambda s: s.add_policy(spec))

    async def update_policy(self, policy_id: str, spec: PolicySpec) -> Policy:
        return await self._call(lambda s: s.update_policy(policy_id, spec))

    async def set_enabled(self, policy_id: str, enabled: bool) -> None:
        await self._call(lambda s: s.set_enabled(policy_id, enabled))

    async def remove_policy(self, policy_id: str) -> None:
        await self._call(lambda s: s.remove_policy(policy_id))

    async def start_resync(
        self, *policy_ids: str, page_size: int | None = None
    ) -> list[dict[str, Any]]:
        return await self._call(lambda s: s.start_resync(*policy_ids, page_size=page_size))

    async def cancel_resync(self, *policy_ids: str) -> list[int]:
        return await self._call(lambda s: s.cancel_resync(*policy_ids))

    async def resyncs(self) -> list[dict[str, Any]]:
        return await self._call(lambda s: s.resyncs())

    async def diff(self, policy_id: str) -> list[Difference]:
        return await self._call(lambda s: s.diff(policy_id))

    async def verify(
        self,
        policy_id: str,
        sample: int | None = None,
        seed: int | None = None,
        concurrency: int = 8,
    ) -> PolicyReport:
        return await self._call(lambda s: s.verify(policy_id, sample, seed, concurrency))

    async def aliases(self) -> list[dict[str, object]]:
        return await self._call(lambda s: s.aliases())

    async def set_alias(self, alias: Alias, check: bool = True) -> None:
        await self._call(lambda s: s.set_alias(alias, check))

    async def remove_alias(self, name: str) -> None:
        await self._call(lambda s: s.remove_alias(name))

    async def audit(self, limit: int = 100) -> list[AuditEntry]:
        return await self._call(lambda s: s.audit(limit))


async def _awaited(work: Awaitable[T]) -> T:
    return await work
