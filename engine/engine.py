"""The engine: aliases and policies in, replication out.

    policies ──► scanner (+ event hints) ──► queue ──► dispatcher per target ──► transfer
                                              ▲                                     │
                                              └──────── recorder (batched) ◄────────┘
    links: one health probe per endpoint; dispatch pauses while a link is down.

Policies, pause flags and aliases are re-read every second, so the CLI (or the
API) changes a running engine without a restart. Shutdown drains: running
copies get a grace period, then return to pending; nothing is lost either way
because every lease is in the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence

from engine.aliases import Alias
from engine.config import EngineConfig, ensure
from engine.configure import Configurator
from engine.endpoints import Endpoints
from engine.errors import MirrorlineError
from engine.model import Completion
from engine.policy import Policy
from engine.replication.detector import Detector
from engine.replication.dispatcher import Dispatcher, Recorder
from engine.replication.holds import hold_of
from engine.replication.rerun import SETTLE
from engine.replication.resync import ResyncRunner
from engine.state import State, open_state
from engine.telemetry.compose import Live, cluster_of, compose, publish
from engine.telemetry.snapshot import Cluster, Snapshot, Transfer
from engine.telemetry.stats import SLOT, Telemetry

log = logging.getLogger("mirrorline.engine")

# Something served beside the engine (the HTTP API): started once the engine is ready,
# asked to stop through the event when the engine drains, awaited before shutdown.
Attachment = Callable[["Engine", asyncio.Event], Awaitable[None]]


class Engine:
    def __init__(self, config: EngineConfig, attachments: Sequence[Attachment] = ()) -> None:
        self.config = config
        self.attachments = tuple(attachments)
        self.started_at = time.time()
        self.policies: dict[str, Policy] = {}
        self.all_policies: list[Policy] = []  # including disabled ones, for status
        self.paused = False
        self.snapshot: Snapshot | None = None  # the latest, refreshed every second
        self.dispatchers: dict[str, Dispatcher] = {}
        self.detector = Detector(self)
        self.detector.ended = self._ended
        self.endpoints = Endpoints(
            config.state_dir / "aliases.json",
            config.workers * 2 + 8,
            config.probe_interval,
            self.spawn,
        )
        # The detector and the snapshot read these: the endpoints' own dicts.
        self.clients = self.endpoints.clients
        self.links = self.endpoints.links
        self._failure: tuple[str, BaseException] | None = None  # a task that died
        self._died = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()
        self._state: State | None = None
        self._stop = asyncio.Event()
        self._kicked = asyncio.Event()
        self.ready = asyncio.Event()  # set once the state is open and the first snapshot taken
        self._detach = asyncio.Event()
        self.configurator = Configurator(self)

    # -- lifecycle ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None, until_synced: bool = False) -> None:
        """Replicate until `stop` is set (or, with until_synced, until everything is copied)."""
        ensure(self.config.state_dir)  # aliases and tokens stay in it, even with a shared queue
        self._state = state = await open_state(self.config.state_address, engine=True)
        self.queue = state.queue
        self.store = state.policies
        self.detector.leases = state.leases
        self.queue.subscribe(self._work_queued)
        self.recorder = Recorder(self.queue, self._count)
        self.telemetry = Telemetry(state.telemetry, self.started_at)
        try:
            await self.telemetry.load()
            self.endpoints.downtime = self.telemetry.link_downtime
            recovered = await self.queue.recover()
            if recovered:
                log.info("recovered %d leases left by an earlier run", recovered)
                self.configurator.settle_until = time.monotonic() + SETTLE
            await self.configurator.apply()
            await self.refresh()
            self.ready.set()
            self.spawn(self.recorder.run())
            self.spawn(self._telemetry_loop())
            self.spawn(
                ResyncRunner(
                    state.resyncs, self.queue, self.policies, self.dispatchers, leases=state.leases
                ).run()
            )
            attached = [asyncio.create_task(a(self, self._detach)) for a in self.attachments]
            for task in attached:
                task.add_done_callback(self._ended)
            # engine.stop() ends a run given its own `stop` event too
            waiters = [asyncio.create_task(e.wait()) for e in {stop or self._stop, self._stop}]
            died = asyncio.create_task(self._died.wait())
            reloader = self.spawn(self._reload_loop(until_synced))
            await asyncio.wait({*waiters, reloader, died}, return_when=asyncio.FIRST_COMPLETED)
            for t in (*waiters, reloader, died):
                t.cancel()
            log.info("draining")
            self._detach.set()
            await asyncio.gather(*attached, return_exceptions=True)
            await self._shutdown()
        finally:
            await state.close()
        if self._failure is not None:
            what, exc = self._failure
            raise EngineFailure(f"the engine stopped: {what} failed: {_reason(exc)}")

    def _work_queued(self) -> None:
        """Another process queued or freed work (a shared queue's NOTIFY): claim now."""
        for dispatcher in self.dispatchers.values():
            dispatcher.wake()

    def attach(self, *attachments: Attachment) -> None:
        """Serve more beside the engine; before `run` only."""
        self.attachments += attachments

    def stop(self) -> None:
        self._stop.set()

    @property
    def config_error(self) -> str:
        """What is wrong with the configuration now ("" when nothing)."""
        return self.configurator.problem

    @property
    def reloads(self) -> int:
        return self.configurator.reloads

    @property
    def aliases(self) -> dict[str, Alias]:
        return self.endpoints.aliases

    @property
    def state(self) -> State:
        assert self._state is not None, "the engine is not running"
        return self._state

    def kick(self) -> None:
        """Configuration changed (a policy, a pause): reload now rather than within a second."""
        self._kicked.set()

    def wake(self, policy_ids: Iterable[str]) -> None:
        """Work was queued for these policies (a webhook's records): their dispatchers claim now.

        A reload would wake them too, after reading every policy and alias again, on
        every event batch. Only a policy this engine has not loaded yet (added a moment
        ago) needs the reload, and gets it."""
        for pid in policy_ids:
            policy = self.policies.get(pid)
            dispatcher = self.dispatchers.get(policy.target_alias) if policy else None
            if dispatcher is None:
                self.kick()
            else:
                dispatcher.wake()

    async def reconfigure(self) -> Snapshot:
        """Apply a configuration change now and return a snapshot that shows it."""
        await self.configurator.apply()
        return await self.refresh()

    async def _shutdown(self) -> None:
        await self.detector.stop_all()
        await asyncio.gather(
            *(d.drain(self.config.drain_grace) for d in self.dispatchers.values()),
            return_exceptions=True,
        )
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        try:  # what is left to record; with a full state disk this fails too
            await self.recorder.flush()
            await self.refresh(running=False)
            assert self.snapshot is not None
            now = time.time()
            points = self.telemetry.points(self.snapshot.policies, now)
            await self.telemetry.save(points, self._downtimes(), now)
            await publish(self.state.telemetry, self.snapshot)
        finally:
            await self.endpoints.close()

    def spawn(self, coro: Awaitable[None], vital: bool = True) -> asyncio.Task[None]:
        """Run a loop beside the engine; a vital one that dies stops the engine with why."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._ended if vital else self._background.discard)
        return task

    def _ended(self, task: asyncio.Task[None]) -> None:
        """A loop of the engine died: the engine stops, and `run` raises why.

        Carrying on without it would freeze a snapshot or stop a queue unnoticed (a full
        state disk did: the process ran on half-dead), and a supervisor restarts only a
        process that exits with an error."""
        self._background.discard(task)
        if task.cancelled() or task.exception() is None or self._failure is not None:
            return
        exc = task.exception()
        assert exc is not None
        what = getattr(task.get_coro(), "__qualname__", "a task")
        known = isinstance(exc, MirrorlineError)  # a known cause: its one line says it all
        log.error(
            "%s died, stopping the engine: %s", what, _reason(exc), exc_info=not known and exc
        )
        self._failure = (what, exc)
        self._died.set()

    # -- configuration reload ------------------------------------------------------

    async def _reload_loop(self, until_synced: bool) -> None:
        # With until_synced, look for the end five times as often as configuration
        # changes: the last second of an --until-synced run would otherwise be idle.
        ticks = 5 if until_synced else 1
        while True:
            for _ in range(ticks):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._kicked.wait(), self.config.reload_interval / ticks)
                if self._kicked.is_set():
                    self._kicked.clear()
                    break
                if until_synced and await self.synced():
                    log.info("all policies in sync")
                    return
            await self.configurator.apply()

    # -- accounting ------------------------------------------------------------------

    def _count(self, done: Completion) -> None:
        policy = self.policies.get(done.task.policy)
        created = policy.created_at if policy else 0.0
        self.telemetry.completed(done, created, time.time())

    async def synced(self) -> bool:
        """Every policy scanned since start and nothing left to do."""
        if any(pid not in self.detector.scanned_at for pid in self.policies):
            return False
        if any(d.in_flight for d in self.dispatchers.values()):
            return False
        await self.recorder.flush()
        counts = await self.queue.counts()
        return all(
            c.pending + c.in_flight + c.retrying == 0
            for pid, c in counts.items()
            if pid in self.policies
        )

    async def _telemetry_loop(self) -> None:
        """Refresh the snapshot every second, publish it every 2 s, persist every 10 s."""
        tick = 0
        while True:
            await asyncio.sleep(1.0)
            tick += 1
            await self.refresh()
            assert self.snapshot is not None
            if tick % 2 == 0:
                await publish(self.state.telemetry, self.snapshot)
            now = time.time()
            if int(now // SLOT) != int((now - 1.0) // SLOT):
                points = self.telemetry.points(self.snapshot.policies, now)
                await self.telemetry.save(points, self._downtimes(), now)

    def _downtimes(self) -> dict[str, float]:
        return {name: link.status().downtime_total for name, link in self.links.items()}

    async def _cluster(self) -> Cluster | None:
        """Report this node's figures, then read everyone's (nothing, where not shared)."""
        nodes = self.state.nodes
        rate = sum(p.rate.current_bytes for p in self.snapshot.policies) if self.snapshot else 0
        ran = self.telemetry.policies.values()
        await nodes.report(
            self.config.workers,
            rate,
            sum(len(d.in_flight) for d in self.dispatchers.values()),
            sum(t.run_objects for t in ran),
            sum(t.run_bytes for t in ran),
        )
        return cluster_of(await nodes.all())

    async def refresh(self, running: bool = True) -> Snapshot:
        """Take a new snapshot: counters from the queue, everything else from memory."""
        await self.recorder.flush()
        counts = await self.queue.counts()
        now = time.time()
        live = Live(
            started_at=self.started_at,
            workers=self.config.workers,
            running=running,
            links=[link.status() for link in self.links.values()],
            transfers=[
                Transfer(
                    task_id=f.task.id,
                    policy=f.task.policy,
                    key=f.task.key,
                    version_id=f.task.version_id,
                    op=f.task.op.value,
                    size=f.task.size,
                    bytes_done=f.bytes_done,
                    speed=f.bytes_done / max(0.001, now - f.started_at),
                    started_at=f.started_at,
                    attempt=f.task.attempts,
                )
                for d in self.dispatchers.values()
                for f in list(d.in_flight.values())
            ],
            scans={
                pid: (n, self.detector.scanned_at.get(pid))
                for pid, n in self.detector.scan_count.items()
            },
            scan_errors=dict(self.detector.scan_error),
            holds={
                pid: hold_of(pid, route, d, counts[pid].pending if pid in counts else 0, now)
                for d in self.dispatchers.values()
                for pid, route in list(d.routes.items())
            },
            next_scans={pid: self.detector.next_scan_at(pid) for pid in self.policies},
            cluster=await self._cluster(),
            config_error=self.config_error,
        )
        self.snapshot = compose(self.telemetry, self.all_policies, counts, self.paused, live, now)
        return self.snapshot


class EngineFailure(MirrorlineError):
    """A loop of the engine died: the process must end with an error a supervisor sees."""


def _reason(exc: BaseException) -> str:
    return exc.reason if isinstance(exc, MirrorlineError) else f"{type(exc).__name__}: {exc}"
