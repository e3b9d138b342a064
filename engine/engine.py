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
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.aliases import Alias, AliasBook
from engine.api import create_app, serve
from engine.bandwidth import TokenBucket
from engine.db import Database, open_db
from engine.errors import MirrorlineError
from engine.health import Link
from engine.model import Completion
from engine.policies import Policy, PolicyStore
from engine.queue.sqlite import SQLiteQueue
from engine.reporting import Live, compose, publish
from engine.resync import ResyncRunner
from engine.retry import RetryPolicy
from engine.s3.client import S3Client
from engine.s3.control import ControlClient
from engine.scanner import ScanResult, scan, sweep_tags
from engine.scheduler import Dispatcher, Recorder, Route
from engine.service import LocalService
from engine.snapshot import Link as LinkView
from engine.snapshot import Snapshot, Transfer
from engine.statedir import EngineLock, ensure
from engine.telemetry import SLOT, Telemetry
from engine.transfer import TransferContext

log = logging.getLogger("mirrorline.engine")
MiB = 1024 * 1024


@dataclass
class EngineConfig:
    state_dir: Path
    workers: int = 32
    scan_interval: float = 5.0
    probe_interval: float = 2.0
    reload_interval: float = 1.0
    part_size: int = 8 * MiB  # objects up to this go in one PUT; larger in parts of it
    part_budget: int = 16  # multipart parts in memory at once, across all transfers
    drain_grace: float = 30.0
    events: bool = True
    tag_sweep_rate: float = 50.0  # versions per second whose tags are compared (0: off)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    listen: socket.socket | None = None  # serve the HTTP API on this bound socket
    token: str = ""  # the API's bearer token
    metrics_public: bool = False  # /metrics without the token


def origin_of(alias: Alias, bucket: str) -> str:
    return f"{alias.netloc}/{bucket}"


class Engine:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.started_at = time.time()
        self.policies: dict[str, Policy] = {}
        self.all_policies: list[Policy] = []  # including disabled ones, for status
        self.paused = False
        self.snapshot: Snapshot | None = None  # the latest, refreshed every second
        self.links: dict[str, Link] = {}
        self.dispatchers: dict[str, Dispatcher] = {}
        self.scanned_at: dict[str, float] = {}
        self.scan_count: dict[str, int] = {}
        self.scan_error: dict[str, str] = {}
        self._clients: dict[str, S3Client] = {}
        self._aliases: dict[str, Alias] = {}
        self._aliases_mtime = -1.0
        self._scanners: dict[str, asyncio.Task[None]] = {}
        self._sweepers: dict[str, asyncio.Task[None]] = {}
        self._hints: dict[str, set[str]] = {}
        self._hint_events: dict[str, asyncio.Event] = {}
        self._listeners: dict[str, Callable[[], None]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._db: Database | None = None
        self._stop = asyncio.Event()
        self._kicked = asyncio.Event()
        self.ready = asyncio.Event()  # set once the state is open and the first snapshot taken
        self._reloading = asyncio.Lock()
        self._api_stop = asyncio.Event()
        self._part_slots = asyncio.Semaphore(config.part_budget)
        self._limits: dict[str, TokenBucket] = {}

    # -- lifecycle ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None, until_synced: bool = False) -> None:
        """Replicate until `stop` is set (or, with until_synced, until everything is copied)."""
        state = ensure(self.config.state_dir)
        lock = EngineLock(state)
        lock.acquire()
        self._db = await open_db(state / "mirrorline.db")
        self.queue = SQLiteQueue(self._db)
        self.store = PolicyStore(self._db)
        self.recorder = Recorder(self.queue, self._count)
        self.telemetry = Telemetry(self._db, self.started_at)
        try:
            await self.telemetry.load()
            recovered = await self.queue.recover()
            if recovered:
                log.info("recovered %d leases left by an earlier run", recovered)
            await self._reload()
            await self.refresh()
            self.ready.set()
            self._spawn(self.recorder.run())
            self._spawn(self._telemetry_loop())
            self._spawn(ResyncRunner(self._db, self.queue, self.policies, self.dispatchers).run())
            api = self._serve_api()
            waiter = asyncio.create_task((stop or self._stop).wait())
            reloader = asyncio.create_task(self._reload_loop(until_synced))
            await asyncio.wait({waiter, reloader}, return_when=asyncio.FIRST_COMPLETED)
            for t in (waiter, reloader):
                t.cancel()
            log.info("draining")
            if api is not None:
                self._api_stop.set()
                await api
            await self._shutdown()
        finally:
            await self._db.close()
            lock.release()

    def stop(self) -> None:
        self._stop.set()

    @property
    def db(self) -> Database:
        assert self._db is not None, "the engine is not running"
        return self._db

    def _serve_api(self) -> asyncio.Task[None] | None:
        if self.config.listen is None:
            return None
        assert self._db is not None
        service = LocalService(
            self._db, AliasBook(self.config.state_dir / "aliases.json"), "api", engine=self
        )
        app = create_app(service, self.config.token, self.config.metrics_public)
        return asyncio.create_task(serve(app, self.config.listen, self._api_stop))

    def kick(self) -> None:
        """Configuration changed (a policy, a pause): reload now rather than within a second."""
        self._kicked.set()

    async def reconfigure(self) -> Snapshot:
        """Apply a configuration change now and return a snapshot that shows it."""
        await self._reload()
        return await self.refresh()

    async def _shutdown(self) -> None:
        for stopper in self._listeners.values():
            stopper()
        for running in (*self._scanners.values(), *self._sweepers.values()):
            running.cancel()
        await asyncio.gather(
            *(d.drain(self.config.drain_grace) for d in self.dispatchers.values()),
            return_exceptions=True,
        )
        for task in self._background:
            task.cancel()
        await asyncio.gather(
            *self._scanners.values(),
            *self._sweepers.values(),
            *self._background,
            return_exceptions=True,
        )
        await self.recorder.flush()
        await self.refresh(running=False)
        assert self._db is not None and self.snapshot is not None
        now = time.time()
        points = self.telemetry.points(self.snapshot.policies, now)
        await self.telemetry.save(points, self._downtimes(), now)
        await publish(self._db, self.snapshot)
        for client in self._clients.values():
            await client.close()

    def _spawn(self, coro: Awaitable[None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

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
            try:
                await self._reload()
            except MirrorlineError as exc:
                log.error("reload failed: %s", exc)

    def _load_aliases(self) -> None:
        path = self.config.state_dir / "aliases.json"
        mtime = path.stat().st_mtime if path.exists() else 0.0
        if mtime != self._aliases_mtime:
            fresh = AliasBook(path).all()
            for name, old in self._aliases.items():
                if fresh.get(name) != old and name in self._clients:
                    self._replace_client(name, fresh.get(name))
            self._aliases = fresh
            self._aliases_mtime = mtime

    def _client(self, name: str) -> S3Client:
        if name not in self._clients:
            self._clients[name] = self._client_for(self._aliases[name])
            if name in self.links:
                self.links[name].client = self._clients[name]
            else:
                self.links[name] = Link(name, self._clients[name], self.config.probe_interval)
                self.links[name].downtime_total = self.telemetry.link_downtime.get(name, 0.0)
                self._spawn(self.links[name].run())
        return self._clients[name]

    def _replace_client(self, name: str, alias: Alias | None) -> None:
        """An alias changed (new credentials, say): its routes are rebuilt on this reload."""
        self._spawn(self._clients.pop(name).close())
        for dispatcher in self.dispatchers.values():
            for pid, route in list(dispatcher.routes.items()):
                if name in (route.source_link.alias, route.target_link.alias):
                    del dispatcher.routes[pid]
                    self.policies.pop(pid, None)
        if alias is not None:
            self.links[name].client = self._client_for(alias)
            self._clients[name] = self.links[name].client

    def _client_for(self, alias: Alias) -> S3Client:
        return S3Client.for_alias(alias, max_connections=self.config.workers * 2 + 8)

    async def _reload(self) -> None:
        async with self._reloading:  # the API may reload while the loop does
            await self._reload_now()

    async def _reload_now(self) -> None:
        self._load_aliases()
        self.paused = paused = await self.store.engine_paused()
        self.all_policies = await self.store.all()
        wanted = {
            p.id: p
            for p in self.all_policies
            if p.enabled and p.source_alias in self._aliases and p.target_alias in self._aliases
        }
        for pid in set(self.policies) - set(wanted):
            self._retire(pid)
        for pid, policy in wanted.items():
            route = self._route(policy)
            route.active = not (paused or policy.paused)
            if pid not in self._scanners:
                self._scanners[pid] = asyncio.create_task(self._scan_loop(pid))
                if self.config.tag_sweep_rate > 0:
                    self._sweepers[pid] = asyncio.create_task(self._sweep_loop(pid))
            self.policies[pid] = policy
        for dispatcher in self.dispatchers.values():
            dispatcher.wake()

    def _route(self, policy: Policy) -> Route:
        dispatcher = self.dispatchers.get(policy.target_alias)
        if dispatcher is None:
            dispatcher = Dispatcher(
                policy.target_alias,
                self.queue,
                self.recorder,
                self.config.workers,
                self.config.retry,
                on_error=lambda task, error: self.telemetry.failed(task.policy, error, time.time()),
            )
            self.dispatchers[policy.target_alias] = dispatcher
            self._spawn(dispatcher.run())
        old = self.policies.get(policy.id)
        route = dispatcher.routes.get(policy.id)
        if route is None or old != policy:
            limit = self._limits.setdefault(policy.id, TokenBucket(policy.bandwidth))
            limit.set_rate(policy.bandwidth)
            context = TransferContext(
                policy=policy,
                source=self._client(policy.source_alias),
                target=self._client(policy.target_alias),
                source_origin=origin_of(self._aliases[policy.source_alias], policy.source_bucket),
                target_origin=origin_of(self._aliases[policy.target_alias], policy.target_bucket),
                part_size=self.config.part_size,
                part_slots=self._part_slots,
                limit=limit if policy.bandwidth else None,
                on_bytes=lambda n, pid=policy.id: self.telemetry.streamed(pid, n),
            )
            route = Route(
                context,
                self.links[policy.source_alias],
                self.links[policy.target_alias],
                policy.priority,
            )
            dispatcher.routes[policy.id] = route
        return route

    def _retire(self, pid: str) -> None:
        policy = self.policies.pop(pid)
        self.dispatchers[policy.target_alias].routes.pop(pid, None)
        for tasks in (self._scanners, self._sweepers):
            if running := tasks.pop(pid, None):
                running.cancel()
        if stopper := self._listeners.pop(pid, None):
            stopper()
        self.scanned_at.pop(pid, None)

    # -- change detection ---------------------------------------------------------

    def _reverse(self, policy: Policy) -> list[str]:
        """Policies replicating our target back into our source: their replicas are echoes."""
        return [
            p.id
            for p in self.policies.values()
            if p.source_alias == policy.target_alias
            and p.source_bucket == policy.target_bucket
            and p.target_alias == policy.source_alias
            and p.target_bucket == policy.source_bucket
        ]

    def hint(self, policy_id: str, key: str) -> None:
        """A change notification for one key: scan just that key soon."""
        if policy_id in self._hint_events:
            self._hints.setdefault(policy_id, set()).add(key)
            self._hint_events[policy_id].set()

    async def _scan_loop(self, pid: str) -> None:
        self._hint_events[pid] = wake = asyncio.Event()
        self._start_listener(pid)
        full_due = 0.0
        while True:
            policy = self.policies.get(pid) or await self.store.get(pid)
            source, target = self.links[policy.source_alias], self.links[policy.target_alias]
            if not (source.online and target.online):
                await asyncio.sleep(self.config.probe_interval)
                continue
            keys = self._hints.pop(pid, set())
            try:
                if time.monotonic() >= full_due or len(keys) > 100:
                    started = time.time()
                    result = await self._scan(policy)
                    self.scanned_at[pid] = started
                    self.scan_count[pid] = self.scan_count.get(pid, 0) + 1
                    self.scan_error.pop(pid, None)
                    full_due = time.monotonic() + self.config.scan_interval
                    if result.enqueued:
                        log.info(
                            "scan %s: %d keys, %d versions, %d new tasks",
                            pid,
                            result.keys,
                            result.versions,
                            result.enqueued,
                        )
                else:
                    for key in sorted(keys):
                        await self._scan(policy, prefix=key)
            except MirrorlineError as exc:
                if self.scan_error.get(pid) != exc.reason:
                    log.warning("scan %s failed: %s", pid, exc)
                self.scan_error[pid] = exc.reason
                full_due = time.monotonic() + self.config.scan_interval
            wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), max(0.0, full_due - time.monotonic()))

    async def _scan(self, policy: Policy, prefix: str | None = None) -> ScanResult:
        result = await scan(
            policy,
            self._clients[policy.source_alias],
            self._clients[policy.target_alias],
            self.queue,
            self._reverse(policy),
            prefix=prefix,
        )
        if result.enqueued:
            self.dispatchers[policy.target_alias].wake()
        return result

    async def _sweep_loop(self, pid: str) -> None:
        """Metadata sync: walk the replica map at a bounded rate comparing tags."""
        batch = max(1, int(self.config.tag_sweep_rate))
        cursor = ""
        while True:
            await asyncio.sleep(1.0)
            policy = self.policies.get(pid)
            if policy is None or not policy.wants("metadata-sync"):
                continue
            source, target = self.links[policy.source_alias], self.links[policy.target_alias]
            if not (source.online and target.online) or self.dispatchers[policy.target_alias].busy:
                continue  # the lowest priority: never competes with copies
            try:
                cursor, queued = await sweep_tags(
                    policy,
                    self._clients[policy.source_alias],
                    self._clients[policy.target_alias],
                    self.queue,
                    cursor,
                    batch,
                )
            except MirrorlineError as exc:
                log.debug("tag sweep %s: %s", pid, exc)
                continue
            if queued:
                log.info("tag sweep %s: %d versions with changed tags", pid, queued)
                self.dispatchers[policy.target_alias].wake()

    def _start_listener(self, pid: str) -> None:
        if not self.config.events:
            return
        policy = self.policies[pid]
        loop = asyncio.get_running_loop()
        control = ControlClient(self._aliases[policy.source_alias], timeout=3600)

        def on_key(key: str) -> None:
            loop.call_soon_threadsafe(self.hint, pid, key)

        def unsupported(reason: str) -> None:
            log.info(
                "policy %s: %s; relying on scans every %ss", pid, reason, self.config.scan_interval
            )

        self._listeners[pid] = control.listen(
            policy.source_bucket, policy.prefix, on_key, unsupported
        )

    # -- accounting ------------------------------------------------------------------

    def _count(self, done: Completion) -> None:
        policy = self.policies.get(done.task.policy)
        created = policy.created_at if policy else 0.0
        self.telemetry.completed(done, created, time.time())

    async def synced(self) -> bool:
        """Every policy scanned since start and nothing left to do."""
        if any(pid not in self.scanned_at for pid in self.policies):
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
            assert self._db is not None and self.snapshot is not None
            if tick % 2 == 0:
                await publish(self._db, self.snapshot)
            now = time.time()
            if int(now // SLOT) != int((now - 1.0) // SLOT):
                points = self.telemetry.points(self.snapshot.policies, now)
                await self.telemetry.save(points, self._downtimes(), now)

    def _downtimes(self) -> dict[str, float]:
        return {name: link.status().downtime_total for name, link in self.links.items()}

    async def refresh(self, running: bool = True) -> Snapshot:
        """Take a new snapshot: counters from the queue, everything else from memory."""
        await self.recorder.flush()
        counts = await self.queue.counts()
        now = time.time()
        live = Live(
            started_at=self.started_at,
            workers=self.config.workers,
            running=running,
            links=[self._link_view(link) for link in self.links.values()],
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
            scans={pid: (n, self.scanned_at.get(pid)) for pid, n in self.scan_count.items()},
            scan_errors=dict(self.scan_error),
        )
        self.snapshot = compose(self.telemetry, self.all_policies, counts, self.paused, live, now)
        return self.snapshot

    @staticmethod
    def _link_view(link: Link) -> LinkView:
        status = link.status()
        return LinkView(
            alias=status.alias,
            online=status.online,
            since=status.since,
            downtime_current=status.downtime_current,
            downtime_total=status.downtime_total,
            latency_ms=status.latency_ms,
            last_error=status.last_error,
        )
