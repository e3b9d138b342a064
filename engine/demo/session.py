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
import datetime as dt
import logging
from dataclasses import dataclass
from urllib.parse import quote

import httpx

from engine.demo.faults import FaultState
from engine.demo.lab import SOURCE, Lab
from engine.demo.mix import Kind, Mix
from engine.demo.workload import OnWrite, Workload, Write
from engine.engine import Engine
from engine.s3.client import S3Client

log = logging.getLogger("mirrorline.demo")

LATENCY = 0.3  # seconds added each way by the latency fault
THROTTLE = 256 * 1024  # bytes per second through the link under the bandwidth fault
RESET_AFTER = 256 * 1024  # request bytes after which the reset fault drops a connection
MAX_RATE = 500.0


@dataclass(frozen=True)
class DemoState:
    """What the console's demo line shows."""

    fault: FaultState
    rate: float  # operations per second asked of the workload
    events: bool  # each write is also posted to the engine's webhook
    ops: int  # operations the source accepted
    events_posted: int
    errors: int


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
        webhook: str = "",
        token: str = "",
        mix: Mix | None = None,
    ) -> None:
        self.lab = lab
        self.events = events
        self.seed = seed
        self.mix = mix or Mix()
        self._rate = rate
        self._webhook = webhook  # the engine's /v1/events/minio URL ("" with no API)
        self._token = token
        self._workloads: list[tuple[Stream, Workload]] = []
        self._http: httpx.AsyncClient | None = None
        self._posted = 0
        self._post_errors = 0
        self.ready = asyncio.Event()

    # -- the attachment -----------------------------------------------------------------

    async def run(self, engine: Engine, stop: asyncio.Event) -> None:
        """Traffic until the engine drains; then the workloads finish what they started."""
        source = S3Client.for_alias(self.lab.source_alias, max_connections=32)
        self._http = httpx.AsyncClient(timeout=10)
        runs = []
        for n, stream in enumerate(STREAMS):
            mix = Mix(**{**self.mix.__dict__, "prefix": stream.prefix})
            workload = Workload(
                source,
                stream.bucket,
                self.seed * 100 + n,
                self._rate * stream.share,
                mix=mix,
                on_write=self._on_write(stream.bucket),
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
            await self._http.aclose()
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

    def toggle_events(self) -> None:
        self.events = not self.events

    def cut(self) -> None:
        self.lab.proxy.cut()

    def latency(self) -> None:
        self.lab.proxy.delay(LATENCY)

    def throttle(self) -> None:
        self.lab.proxy.throttle(THROTTLE)

    def resets(self) -> None:
        self.lab.proxy.reset_after(RESET_AFTER, repeat=True)

    def heal(self) -> None:
        self.lab.proxy.heal()

    def state(self) -> DemoState:
        stats = [w.stats for _, w in self._workloads]
        return DemoState(
            fault=self.lab.proxy.state,
            rate=self._rate,
            events=self.events,
            ops=sum(s.ops for s in stats),
            events_posted=self._posted,
            errors=sum(s.errors for s in stats) + self._post_errors,
        )

    def writes(self) -> list[tuple[str, Write]]:
        """Every accepted operation so far with its bucket, for checks and lag figures."""
        return [(stream.bucket, w) for stream, workload in self._workloads for w in workload.writes]

    # -- events as MinIO's notify_webhook sends them ------------------------------------------

    def _on_write(self, bucket: str) -> OnWrite:
        async def tell(write: Write) -> None:
            if self.events and self._webhook and self._http is not None:
                await self._post(bucket, write)

        return tell

    async def _post(self, bucket: str, write: Write) -> None:
        assert self._http is not None
        record = minio_record(bucket, write)
        try:
            resp = await self._http.post(
                self._webhook,
                params={"alias": SOURCE},
                json={
                    "EventName": record["eventName"],
                    "Key": f"{bucket}/{write.op.key}",
                    "Records": [record],
                },
                headers={"Authorization": f"Bearer {self._token}"},
            )
            resp.raise_for_status()
            self._posted += 1
        except httpx.HTTPError as exc:
            self._post_errors += 1
            log.debug("webhook post failed: %s", exc)


def minio_record(bucket: str, write: Write) -> dict[str, object]:
    """One S3 event record as MinIO's notify_webhook sends it (keys URL-encoded)."""
    names = {
        Kind.CREATE: "s3:ObjectCreated:Put",
        Kind.OVERWRITE: "s3:ObjectCreated:Put",
        Kind.DELETE: "s3:ObjectRemoved:DeleteMarkerCreated",
        Kind.RETAG: "s3:ObjectCreated:PutTagging",
    }
    at = dt.datetime.fromtimestamp(write.accepted_at, dt.UTC)
    return {
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "eventTime": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "eventName": names[write.op.kind],
        "s3": {
            "bucket": {"name": bucket},
            "object": {
                "key": quote(write.op.key, safe="/"),
                "versionId": write.version_id,
                "size": write.op.size,
            },
        },
    }
