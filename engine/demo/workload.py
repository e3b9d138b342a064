"""Carry out a seeded plan against a real store at a steady, adjustable rate.

Operations start on a clock (`rate` per second), not one after another, so a
slow upload does not slow the rate; up to `concurrency` run at once, and
when all of them are busy the rate gives way rather than queueing without
bound. Operations on one key still run in plan order (an overwrite waits for
the create before it), so the store ends up with the versions the plan says.

Each operation the store accepted is kept as a `Write` with the moment the
store answered: replication lag is measured from there. `on_write` hears of
each one too (the demo posts MinIO-style webhook events from it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import inspect
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from urllib.parse import quote

from engine.demo.mix import Kind, Mix, Op, Planner
from engine.errors import MirrorlineError, UserError
from engine.s3.client import S3Client
from engine.shielded import shielded

log = logging.getLogger("mirrorline.demo.workload")

MAX_DEBT = 1.0  # seconds of missed starts made up after a stall, at most
INLINE_BODY = 1024 * 1024  # larger bodies are made (and hashed) off the event loop


@dataclass(frozen=True, slots=True)
class Write:
    """One operation the source accepted."""

    op: Op
    version_id: str  # the new version, the delete marker, or the version retagged ("": unknown)
    accepted_at: float  # epoch seconds when the source answered
    etag: str = ""  # of a new version


@dataclass(slots=True)
class Stats:
    """What the workload did so far."""

    ops: int = 0  # accepted by the source
    written: int = 0  # new keys
    overwritten: int = 0  # new versions of live keys
    deleted: int = 0  # delete markers
    retagged: int = 0
    bytes: int = 0  # of object contents written
    errors: int = 0
    last_error: str = ""

    def count(self, op: Op) -> None:
        self.ops += 1
        if op.kind is Kind.CREATE:
            self.written += 1
        elif op.kind is Kind.OVERWRITE:
            self.overwritten += 1
        elif op.kind is Kind.DELETE:
            self.deleted += 1
        else:
            self.retagged += 1
        self.bytes += op.size


OnWrite = Callable[[Write], Awaitable[None] | None]


class Workload:
    """One bucket's traffic: `rate` operations a second from the plan of `seed`."""

    def __init__(
        self,
        store: S3Client,
        bucket: str,
        seed: int,
        rate: float,
        *,
        mix: Mix | None = None,
        on_write: OnWrite | None = None,
        concurrency: int = 8,
        keep: int = 100_000,
    ) -> None:
        self.store = store
        self.bucket = bucket
        self.seed = seed
        self.mix = mix or Mix()
        self.on_write = on_write
        self.writes: deque[Write] = deque(maxlen=keep)  # the newest `keep` accepted operations
        self._plan = Planner(seed, self.mix)
        self._rate = _checked(rate)
        self._stats = Stats()
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._stopping = False
        self._running: set[asyncio.Task[None]] = set()
        self._tails: dict[str, asyncio.Task[None]] = {}  # key -> its latest operation
        self._latest: dict[str, str] = {}  # live key -> the version this workload last wrote

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def stats(self) -> Stats:
        """A copy, consistent at one moment."""
        return replace(self._stats)

    def set_rate(self, rate: float) -> None:
        """Change the rate while running; 0 pauses. Takes effect at once, not after the next op."""
        self._rate = _checked(rate)
        self._wake.set()

    def stop(self) -> None:
        """Start no more operations; `run` returns when the ones under way are done."""
        self._stopping = True
        self._wake.set()

    async def run(self, ops: int | None = None) -> None:
        """Start operations on the clock until `stop()` (or `ops` of them), then finish them."""
        loop = asyncio.get_running_loop()
        self._stopping = False
        started = 0
        due = loop.time()
        try:
            while not self._stopping and (ops is None or started < ops):
                if self._rate <= 0:
                    await self._nap(None)
                    due = loop.time()
                    continue
                if due > loop.time() and await self._nap(due - loop.time()):
                    due = min(due, loop.time() + 1 / self._rate) if self._rate > 0 else due
                    continue
                await self._slots.acquire()
                self._start(next(self._plan))
                started += 1
                due = max(due + 1 / self._rate, loop.time() - MAX_DEBT)
        finally:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _nap(self, seconds: float | None) -> bool:
        """Sleep `seconds` (None: until woken); True if `set_rate` or `stop` woke us."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()
                return True
        return False

    def _start(self, op: Op) -> None:
        before = self._tails.get(op.key)
        task = asyncio.create_task(self._perform(op, before))
        self._running.add(task)
        self._tails[op.key] = task
        task.add_done_callback(lambda done: self._finished(op.key, done))

    def _finished(self, key: str, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if self._tails.get(key) is task:
            del self._tails[key]
        self._slots.release()

    async def _perform(self, op: Op, before: asyncio.Task[None] | None) -> None:
        if before is not None:
            await asyncio.wait([before])  # its outcome is its own; only the order matters here
        try:
            version, etag = await self._apply(op)
        except MirrorlineError as exc:
            self._stats.errors += 1
            self._stats.last_error = exc.reason
            log.debug("workload op %d (%s %s) failed: %s", op.index, op.kind, op.key, exc)
            return
        write = Write(op, version, time.time(), etag)
        self._stats.count(op)
        self.writes.append(write)
        if self.on_write is not None:
            await _tell(self.on_write, write)

    async def _apply(self, op: Op) -> tuple[str, str]:
        """Send one operation; returns (version id, ETag) as the source gave them."""
        if op.kind is Kind.DELETE:
            version, _ = await self.store.delete(self.bucket, op.key)
            self._latest.pop(op.key, None)
            return version, ""
        if op.kind is Kind.RETAG:
            version = self._latest.get(op.key, "")
            await self.store.put_tags(self.bucket, op.key, version, dict(op.tags))
            return version, ""
        body = op.body() if op.size <= INLINE_BODY else await asyncio.to_thread(op.body)
        if op.size >= self.mix.multipart_from:
            version, etag = await self._multipart(op, body)
        else:
            version, etag = await self.store.put(self.bucket, op.key, body, _headers(op))
        self._latest[op.key] = version
        return version, etag

    async def _multipart(self, op: Op, body: bytes) -> tuple[str, str]:
        upload = await self.store.create_multipart(self.bucket, op.key, _headers(op))
        try:
            etags = []
            view = memoryview(body)
            for number, start in enumerate(range(0, len(body), self.mix.part_size), 1):
                part = view[start : start + self.mix.part_size]
                md5 = await asyncio.to_thread(_md5, part)
                etag = await self.store.upload_part(
                    self.bucket, op.key, upload, number, bytes(part), md5, len(part)
                )
                etags.append(etag)
            return await self.store.complete_multipart(self.bucket, op.key, upload, etags)
        except BaseException:
            with contextlib.suppress(MirrorlineError):
                await shielded(self.store.abort_multipart(self.bucket, op.key, upload))
            raise


async def _tell(listener: OnWrite, write: Write) -> None:
    try:
        result = listener(write)
        if inspect.isawaitable(result):
            await result
    except Exception:  # a listener's failure must not stop the traffic
        log.exception("workload on_write failed for op %d", write.op.index)


def _headers(op: Op) -> dict[str, str]:
    headers = {f"x-amz-meta-{name}": value for name, value in op.metadata}
    if op.content_type:
        headers["Content-Type"] = op.content_type
    if op.tags:
        headers["x-amz-tagging"] = "&".join(
            f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in op.tags
        )
    return headers


def _md5(data: memoryview) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def _checked(rate: float) -> float:
    if rate < 0:
        raise UserError(f"workload rate must be 0 or more operations a second, not {rate}")
    return float(rate)
