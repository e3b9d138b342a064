"""Link health: is an endpoint reachable right now, and for how long has it not been?

A probe runs every few seconds per alias. A connection failure seen by a
worker marks the link offline at once (no waiting for the next probe), and
only a successful probe brings it back: dispatch to a dead link pauses instead
of burning retries, and resumes by itself.
"""

from __future__ import annotations

import asyncio
import logging
import time

from engine.errors import MirrorlineError
from engine.s3 import ObjectStore
from engine.telemetry.snapshot import Link as LinkView

log = logging.getLogger("mirrorline.health")


class Link:
    """One endpoint's health, shared by every policy that reads or writes it."""

    def __init__(self, alias: str, client: ObjectStore, interval: float = 2.0) -> None:
        self.alias = alias
        self.client = client
        self.interval = interval
        self.online = True
        self.since = time.time()
        self.downtime_total = 0.0
        self.latency_ms: float | None = None
        self.last_error = ""
        self.changed = asyncio.Event()

    def status(self) -> LinkView:
        """As the snapshot shows it: downtimes include the outage still going on."""
        current = 0.0 if self.online else time.time() - self.since
        return LinkView(
            alias=self.alias,
            online=self.online,
            since=self.since,
            downtime_current=current,
            downtime_total=self.downtime_total + current,
            latency_ms=self.latency_ms,
            last_error=self.last_error,
        )

    def mark_offline(self, reason: str) -> None:
        if self.online:
            log.warning("link %s offline: %s", self.alias, reason)
            self.online, self.since, self.last_error = False, time.time(), reason
            self._notify()

    def mark_online(self) -> None:
        if not self.online:
            now = time.time()
            self.downtime_total += now - self.since
            log.info("link %s back online after %.1fs", self.alias, now - self.since)
            self.online, self.since, self.last_error = True, now, ""
            self._notify()

    def _notify(self) -> None:
        self.changed.set()
        self.changed = asyncio.Event()

    async def probe(self) -> None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(max(self.interval, 3.0)):
                await self.client.list_buckets()
        except (MirrorlineError, TimeoutError) as exc:
            if getattr(exc, "retryable", True):
                self.mark_offline(str(exc) or "probe timed out")
                return
        self.latency_ms = (time.perf_counter() - started) * 1000
        self.mark_online()

    async def run(self) -> None:
        while True:
            await self.probe()
            await asyncio.sleep(self.interval if self.online else min(self.interval, 1.0))
