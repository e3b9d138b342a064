"""Change detection: scans (with event hints), tag sweeps and MinIO listeners per policy.

For each running policy the detector keeps a scan loop (a full scan every
`--scan-interval`, or a scan of just the keys an event named), a paced tag
sweep, and, on MinIO sources, a bucket-notification listener feeding hints.
What it finds goes into the queue; the engine's dispatchers do the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Collection, Coroutine, Mapping
from typing import Any, Protocol

from engine.aliases import Alias
from engine.config import EngineConfig
from engine.errors import MirrorlineError
from engine.policy import Policy
from engine.replication.dispatcher import Dispatcher
from engine.replication.health import Link
from engine.replication.scanner import ScanResult, scan, sweep_tags
from engine.s3 import ObjectStore
from engine.s3.listen import listen
from engine.state.queue import TaskQueue
from engine.state.stores import LeaseStore, PolicyStore, SoloLeases

log = logging.getLogger("mirrorline.engine")

DEFER_LIMIT = 12  # a full scan waits for the previous backlog at most this many intervals
DEFER_RECHECK = 0.25  # seconds between looks while a due full scan waits for the backlog


class Topology(Protocol):
    """What change detection reads of the engine that runs it (the engine satisfies it)."""

    config: EngineConfig
    policies: dict[str, Policy]
    links: dict[str, Link]
    aliases: dict[str, Alias]
    dispatchers: dict[str, Dispatcher]
    queue: TaskQueue
    store: PolicyStore

    @property
    def clients(self) -> Mapping[str, ObjectStore]: ...  # read-only, so any store type fits


class Detector:
    """The engine's change-detection half: one scan loop and one sweep per policy."""

    def __init__(
        self, engine: Topology, leases: LeaseStore | None = None, defer_limit: float = DEFER_LIMIT
    ) -> None:
        self.engine = engine
        self.defer_limit = defer_limit  # scan intervals a full scan may wait for a backlog
        # On a shared state, a policy's full scan is one node's job at a time: the one
        # holding its lease (the others scan only keys their events name).
        self.leases = leases or SoloLeases()
        self.scanned_at: dict[str, float] = {}  # when the last full scan started
        self.scan_count: dict[str, int] = {}
        self.sweeps: dict[str, int] = {}  # full passes of the tag sweep, per policy
        self.scan_error: dict[str, str] = {}
        self._full_due: dict[str, float] = {}  # monotonic time the next full scan is due
        self._scanners: dict[str, asyncio.Task[None]] = {}
        self._sweepers: dict[str, asyncio.Task[None]] = {}
        self._hints: dict[str, set[str]] = {}
        self._scanning: set[str] = set()  # policies with a scan listing right now
        self._hint_events: dict[str, asyncio.Event] = {}
        self._listeners: dict[str, Callable[[], None]] = {}
        # Hears of every loop that ends (the engine stops when one died of an error).
        self.ended: Callable[[asyncio.Task[None]], None] = lambda task: None

    def start(self, pid: str) -> None:
        """Watch a policy (idempotent)."""
        if pid not in self._scanners:
            self._scanners[pid] = self._watched(self._scan_loop(pid))
            if self.engine.config.tag_sweep_rate > 0:
                self._sweepers[pid] = self._watched(self._sweep_loop(pid))

    def _watched(self, loop: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(loop)
        task.add_done_callback(lambda done: self.ended(done))
        return task

    def stop(self, pid: str) -> None:
        for tasks in (self._scanners, self._sweepers):
            if running := tasks.pop(pid, None):
                running.cancel()
        if stopper := self._listeners.pop(pid, None):
            stopper()
        self.scanned_at.pop(pid, None)
        self._full_due.pop(pid, None)  # started again, it scans in full at once

    async def stop_all(self) -> None:
        for stopper in self._listeners.values():
            stopper()
        running = [*self._scanners.values(), *self._sweepers.values()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    def reverse(self, policy: Policy) -> list[str]:
        """Policies replicating our target back into our source: their replicas are echoes."""
        return [
            p.id
            for p in self.engine.policies.values()
            if p.source_alias == policy.target_alias
            and p.source_bucket == policy.target_bucket
            and p.target_alias == policy.source_alias
            and p.target_bucket == policy.source_bucket
        ]

    def next_scan_at(self, pid: str) -> float | None:
        """When the policy's next full scan is due, wall-clock (None: not scanned yet)."""
        due = self._full_due.get(pid)
        return None if due is None else time.time() + max(0.0, due - time.monotonic())

    def hint(self, policy_id: str, key: str) -> None:
        """A change notification for one key: scan just that key soon."""
        if policy_id in self._hint_events:
            self._hints.setdefault(policy_id, set()).add(key)
            self._hint_events[policy_id].set()

    async def sync_once(self, policy: Policy, keys: Collection[str] = ()) -> ScanResult:
        """One step of change detection: a full scan when one is due, else just `keys`.

        A full scan is due at start, `--scan-interval` after the last one ended (or
        failed), and when more keys were hinted than one-key scans are worth. A
        failure is recorded in `scan_error` and logged once while it repeats; the
        step returns it as `error` rather than raising, so the loop only waits.
        """
        pid = policy.id
        full = self._full_scan_due(policy) or len(keys) > 100
        if full and not await self.leases.hold(f"scan:{pid}"):
            self._full_due[pid] = time.monotonic() + self.engine.config.scan_interval
            self.scanned_at.setdefault(pid, time.time())  # another node scans it for us
            full = False
        result = ScanResult(full=full)
        started = time.time()
        self._scanning.add(pid)
        try:
            for prefix in [None] if full else sorted(keys):
                result.add(await self._scan(policy, prefix))
        except MirrorlineError as exc:
            if self.scan_error.get(pid) != exc.reason:
                log.warning("scan %s failed: %s", pid, exc)
            self.scan_error[pid] = exc.reason
            self._full_due[pid] = time.monotonic() + self.engine.config.scan_interval
            result.error = exc
            return result
        finally:
            self._scanning.discard(pid)
        if full:
            self.scanned_at[pid] = started
            self.scan_count[pid] = self.scan_count.get(pid, 0) + 1
            self.scan_error.pop(pid, None)
            self._full_due[pid] = time.monotonic() + self.engine.config.scan_interval
            if result.enqueued:
                log.info(
                    "scan %s: %d keys, %d versions, %d new tasks",
                    pid,
                    result.keys,
                    result.versions,
                    result.enqueued,
                )
        return result

    def _full_scan_due(self, policy: Policy) -> bool:
        """Due `--scan-interval` after the last one, unless the last one's backlog still copies.

        A rescan in the middle of a bulk copy re-lists both buckets for nothing (what it
        would find is in the queue already) and costs the servers 12-19% more CPU
        (copy-path-profile.md, finding 3). It waits while the policy has transfers
        running, for at most `defer_limit` scan intervals, so a policy that never
        drains is still rescanned.
        """
        now = time.monotonic()
        due = self._full_due.get(policy.id, 0.0)
        if now < due:
            return False
        if due == 0.0 or now >= due + self.defer_limit * self.engine.config.scan_interval:
            return True
        dispatcher = self.engine.dispatchers.get(policy.target_alias)
        return dispatcher is None or not dispatcher.working_on(policy.id)

    def _next_wake(self, policy: Policy) -> float:
        """Seconds until the scan loop should look again (a deferred scan looks often)."""
        due = self._full_due.get(policy.id, 0.0) - time.monotonic()
        return DEFER_RECHECK if due <= 0 else due

    async def _scan_loop(self, pid: str) -> None:
        self._hint_events[pid] = wake = asyncio.Event()
        while True:
            policy = self.engine.policies.get(pid) or await self.engine.store.get(pid)
            ends = (policy.source_alias, policy.target_alias)
            if not all(self.engine.links[alias].online for alias in ends):
                await asyncio.sleep(self.engine.config.probe_interval)
                continue
            wake.clear()  # before taking the hints: one that comes during the step is kept
            await self.sync_once(policy, self._hints.pop(pid, set()))
            if pid not in self._listeners:
                # After the first scan: it sees every key written before it listed, and the
                # listener's minio SDK import (0.35-0.4 s of CPU, in its own thread) does
                # not compete with the first copies.
                self._start_listener(pid)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self._next_wake(policy))

    async def _scan(self, policy: Policy, prefix: str | None = None) -> ScanResult:
        return await scan(
            policy,
            self.engine.clients[policy.source_alias],
            self.engine.clients[policy.target_alias],
            self.engine.queue,
            self.reverse(policy),
            prefix=prefix,
            on_enqueued=self.engine.dispatchers[policy.target_alias].wake,  # after each page
        )

    async def _sweep_loop(self, pid: str) -> None:
        """Metadata sync: walk the replica map at a bounded rate comparing tags."""
        batch = max(1, int(self.engine.config.tag_sweep_rate))
        cursor = ""
        while True:
            await asyncio.sleep(1.0)
            policy = self.engine.policies.get(pid)
            if policy is None or not policy.wants("metadata-sync"):
                continue
            source, target = (
                self.engine.links[policy.source_alias],
                self.engine.links[policy.target_alias],
            )
            if (
                not (source.online and target.online)
                or self.engine.dispatchers[policy.target_alias].busy
                or pid in self._scanning
                or pid not in self.scanned_at
            ):
                # The lowest priority: never competes with copies, nor with a scan whose
                # pages the dispatcher may drain faster than they come (it is idle between
                # them). Before the first full scan everything it would compare is queued.
                continue
            try:
                cursor, queued = await sweep_tags(
                    policy,
                    self.engine.clients[policy.source_alias],
                    self.engine.clients[policy.target_alias],
                    self.engine.queue,
                    cursor,
                    batch,
                )
            except MirrorlineError as exc:
                log.debug("tag sweep %s: %s", pid, exc)
                continue
            if not cursor:
                self.sweeps[pid] = self.sweeps.get(pid, 0) + 1
            if queued:
                log.info("tag sweep %s: %d versions with changed tags", pid, queued)
                self.engine.dispatchers[policy.target_alias].wake()

    def _start_listener(self, pid: str) -> None:
        if not self.engine.config.events:
            self._listeners[pid] = lambda: None
            return
        policy = self.engine.policies[pid]
        loop = asyncio.get_running_loop()

        def on_key(key: str) -> None:
            loop.call_soon_threadsafe(self.hint, pid, key)

        def unsupported(reason: str) -> None:
            log.info(
                "policy %s: %s; relying on scans every %ss",
                pid,
                reason,
                self.engine.config.scan_interval,
            )

        self._listeners[pid] = listen(
            self.engine.aliases[policy.source_alias],
            policy.source_bucket,
            policy.prefix,
            on_key,
            unsupported,
        )
