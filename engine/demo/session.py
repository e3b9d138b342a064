"""The demo's moving parts while it runs: traffic on the source, events, faults on the link.

A `DemoSession` is an engine attachment: it starts with the engine, stops when the
engine drains, and runs on the engine's event loop, so its controls (fault keys, the
rate, the events toggle) are plain calls on that loop. Everything it does reaches the
engine only the way a real deployment would: writes land on the source store, events
arrive at the engine's webhook endpoint over HTTP, faults happen in the TCP proxy the
target alias points at.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from engine.demo.control import DemoAction, DemoState
from engine.demo.events import WebhookFeed
from engine.demo.lab import SOURCE, Lab
from engine.demo.mix import Mix
from engine.demo.workload import Workload, Write
from engine.engine import Engine
from engine.s3.client import S3Client

log = logging.getLogger("mirrorline.demo")

LATENCY = 0.3  # seconds added each way by the latency fault
THROTTLE = 256 * 1024  # bytes per second through the link under the bandwidth fault
RESET_AFTER = 256 * 1024  # request bytes after which the reset fault drops a connection
MAX_RATE = 500.0


@dataclass(frozen=True)
class Stream:
    """One workload: a bucket, the share of the rate it gets, the keys it writes."""

    bucket: str
    share: float
    prefix: str


# The photos policy copies its whole bucket; the logs policy only `app/`, so the
# `other/` traffic shows the prefix filter at work (it never reaches the target).
STREAMS = (
    Stream("photos", 0.7, "load/"),
    Stream("logs", 0.2, "app/"),
    Stream("logs", 0.1, "other/"),
)


class DemoSession:
    def __init__(
        self,
        lab: Lab,
        rate: float,
        seed: int = 1,
        events: bool = False,
        api: str = "",
        token: str = "",
        mix: Mix | None = None,
    ) -> None:
        self.lab = lab
        self.events_on = events
        self.seed = seed
        self.mix = mix or Mix()
        self._rate = rate
        self._api = api  # the engine's API base URL, for the webhook ("" with no API)
        self._token = token
        self._workloads: list[tuple[Stream, Workload]] = []
        self._feeds: list[WebhookFeed] = []
        self.ready = asyncio.Event()

    # -- the attachment -----------------------------------------------------------------

    async def run(self, engine: Engine, stop: asyncio.Event) -> None:
        """Traffic until the engine drains; then the workloads finish what they started."""
        source = S3Client.for_alias(self.lab.source_alias, max_connections=32)
        runs = []
        for n, stream in enumerate(STREAMS):
            mix = replace(self.mix, prefix=stream.prefix)
            feed = WebhookFeed(self._api, self._token, stream.bucket, alias=SOURCE)
            self._feeds.append(feed)
            workload = Workload(
                source,
                stream.bucket,
                self.seed * 100 + n,
                self._rate * stream.share,
                mix=mix,
                on_write=self._events_to(feed),
            )
            self._workloads.append((stream, workload))
            runs.append(asyncio.create_task(workload.run()))
        self.ready.set()
        try:
            await stop.wait()
        finally:
            for _, workload in self._workloads:
                workload.stop()
            await asyncio.gather(*runs, return_exceptions=True)
            for feed in self._feeds:
                await feed.close()
            await source.close()

    # -- controls (on the engine's loop) ----------------------------------------------------

    def set_rate(self, rate: float) -> None:
        self._rate = max(0.0, min(MAX_RATE, rate))
        for stream, workload in self._workloads:
            workload.set_rate(self._rate * stream.share)

    def faster(self) -> None:
        self.set_rate(self._rate * 2 if self._rate else 1.0)

    def slower(self) -> None:
        self.set_rate(self._rate / 2 if self._rate > 0.5 else 0.0)

    def cut(self) -> None:
        self.lab.proxy.cut()

    def latency(self) -> None:
        self.lab.proxy.delay(LATENCY)

    def throttle(self) -> None:
        self.lab.proxy.throttle(THROTTLE)

    def resets(self) -> None:
        self.lab.proxy.reset_after(RESET_AFTER)

    def heal(self) -> None:
        self.lab.proxy.heal()

    def act(self, action: DemoAction) -> DemoState:
        getattr(self, action.value)()
        return self.state()

    def events(self) -> None:
        self.events_on = not self.events_on

    def state(self) -> DemoState:
        stats = [w.stats for _, w in self._workloads]
        fault = self.lab.proxy.state
        return DemoState(
            fault=fault.describe(),
            fault_since=fault.since if fault.describe() != "healthy" else None,
            rate=self._rate,
            events=self.events_on,
            ops=sum(s.ops for s in stats),
            events_posted=sum(f.posted for f in self._feeds),
            errors=sum(s.errors for s in stats) + sum(f.failed for f in self._feeds),
        )

    def writes(self) -> list[tuple[str, Write]]:
        """Every accepted operation so far with its bucket, for checks and lag figures."""
        return [(stream.bucket, w) for stream, workload in self._workloads for w in workload.writes]

    def _events_to(self, feed: WebhookFeed) -> Callable[[Write], Awaitable[None]]:
        async def tell(write: Write) -> None:
            if self.events_on and self._api:
                await feed(write)

        return tell
