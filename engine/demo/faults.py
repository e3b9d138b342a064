"""A TCP proxy between the engine and a store that breaks the link on command.

The demo (and the fault tests) point the engine's target alias at this proxy
and then cut it, slow it, throttle it or reset uploads mid-body, in-process,
while the real store behind it keeps running. No kernel help is needed (the
machines have no `tc netem`) and no third-party proxy (there is no toxiproxy
on PyPI or Debian); bytes are moved in reads of up to 256 KiB, so the proxy
is not what limits a copy at ~50 MB/s.

One fault is active at a time; setting one replaces the one before, and
`heal()` clears it. `state` says which and since when, for the console.

The proxy passes bytes through unchanged, so SigV4 keeps working: a client
signs the Host header it sends (the proxy's address), and the store checks
the Host header it receives, the same one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from enum import StrEnum

from engine.demo.framing import BodyMeter
from engine.demo.pacing import Held, Line

log = logging.getLogger("mirrorline.demo.faults")

CHUNK = 256 * 1024  # largest read; as large as asyncio's own socket reads
REMEMBERED = 4096  # request targets already cut once, for `reset_after` without repeat
CONNECT_TIMEOUT = 5.0
STOP_WAIT = 10.0  # seconds stop() waits for its connections to end


class Fault(StrEnum):
    NONE = "none"
    CUT = "cut"
    DELAY = "delay"
    THROTTLE = "throttle"
    RESET_AFTER = "reset-after"


@dataclass(frozen=True, slots=True)
class FaultState:
    """The active fault, since when (epoch seconds), and its one number."""

    fault: Fault = Fault.NONE
    since: float = field(default_factory=time.time)
    value: float = 0.0  # seconds for DELAY, bytes/s for THROTTLE, bytes for RESET_AFTER
    repeat: bool = False  # RESET_AFTER: cut every request, not each target once

    def describe(self) -> str:
        """One short line for a status bar: "delay 300 ms", "throttle 256 KiB/s"."""
        if self.fault is Fault.DELAY:
            return f"delay {self.value * 1000:.0f} ms"
        if self.fault is Fault.THROTTLE:
            return f"throttle {_size(self.value)}/s"
        if self.fault is Fault.RESET_AFTER:
            return f"reset after {_size(self.value)}{' (every request)' if self.repeat else ''}"
        return "healthy" if self.fault is Fault.NONE else "cut"


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024 or unit == "MiB":
            return f"{n:.0f} {unit}" if unit == "B" or n == int(n) else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


@dataclass(slots=True)
class Counters:
    """What went through, since the proxy started."""

    connections: int = 0  # accepted and connected to the store
    open: int = 0  # of those, open now
    bytes_up: int = 0  # client to store
    bytes_down: int = 0  # store to client
    resets: int = 0  # connections the proxy reset (a cut, or a reset mid-body)
    refused: int = 0  # turned away: during a cut, or the store did not answer


class FaultProxy:
    """Listens on 127.0.0.1 and relays every connection to one upstream store.

    Its methods belong to the event loop it was started in; from another thread,
    go through that loop (`loop.call_soon_threadsafe`, `run_coroutine_threadsafe`).
    """

    def __init__(self, upstream_host: str, upstream_port: int, *, listen_port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listen_port = listen_port
        self._state = FaultState()
        self._counters = Counters()
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._lines: dict[bool, Line] = {}  # by direction (up?), while throttled
        self._cut_once: OrderedDict[str, None] = OrderedDict()

    @property
    def state(self) -> FaultState:
        return self._state

    @property
    def counters(self) -> Counters:
        """A copy: the numbers of one moment, safe to show while traffic flows."""
        return replace(self._counters)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> int:
        """Listen; returns the port (a free one unless `listen_port` was given)."""
        self._server = await asyncio.start_server(
            self._accept, "127.0.0.1", self._listen_port, limit=4 * CHUNK
        )
        return self.port

    async def stop(self) -> None:
        """Stop listening and reset every open connection."""
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.drop()
        # A connection not yet a link (its store connection still opening) is cancelled
        # too, and the wait is bounded: a stop never hangs on one stuck connection.
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            if not task.done():
                task.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=STOP_WAIT)
            if stuck:
                log.warning(
                    "fault proxy: %d connection(s) did not stop in %.0f s", len(stuck), STOP_WAIT
                )
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    # --- the faults ---------------------------------------------------------

    def cut(self) -> None:
        """Reset every open connection and every new one, until healed."""
        self._set(FaultState(Fault.CUT))
        for link in list(self._links):
            link.reset()

    def delay(self, seconds: float) -> None:
        """Hold every chunk `seconds` in each direction (a request's round trip gains 2x)."""
        if seconds <= 0:
            raise ValueError("delay must be positive")
        self._set(FaultState(Fault.DELAY, value=seconds))

    def throttle(self, bytes_per_s: float) -> None:
        """Cap each direction at `bytes_per_s`, shared by all connections."""
        if bytes_per_s <= 0:
            raise ValueError("throttle must be positive")
        self._set(FaultState(Fault.THROTTLE, value=bytes_per_s))
        self._lines = {True: Line(bytes_per_s), False: Line(bytes_per_s)}

    def reset_after(self, n_bytes: int, *, repeat: bool = False) -> None:
        """Reset a connection (RST) once a request body longer than `n_bytes` has sent that many.

        By default each request target (`PUT /bucket/key`, all parts of an upload
        alike) is cut once and its retries pass, so every large upload fails
        mid-body once and replication still moves. With `repeat`, every such
        request is cut, and nothing longer than `n_bytes` gets through.
        """
        if n_bytes < 1:
            raise ValueError("reset_after needs at least one byte")
        self._cut_once.clear()
        self._set(FaultState(Fault.RESET_AFTER, value=n_bytes, repeat=repeat))

    def heal(self) -> None:
        """All faults off; connections already open carry on."""
        self._set(FaultState())

    def _set(self, state: FaultState) -> None:
        self._lines = {}
        log.info("fault proxy %s: %s", self.upstream[1], state.describe())
        self._state = state

    # --- what the connections ask --------------------------------------------

    def added_delay(self) -> float:
        return self._state.value if self._state.fault is Fault.DELAY else 0.0

    def reset_limit(self) -> int | None:
        return int(self._state.value) if self._state.fault is Fault.RESET_AFTER else None

    def may_cut(self, target: str) -> bool:
        """May a request to `target` be cut? Asked when its head has been read."""
        return self._state.repeat or target not in self._cut_once

    def remember_cut(self, target: str) -> None:
        self._cut_once[target] = None
        while len(self._cut_once) > REMEMBERED:
            self._cut_once.popitem(last=False)

    def read_size(self) -> int:
        """Smaller reads under a throttle, so the pace is smooth and not one burst a second."""
        if self._state.fault is Fault.THROTTLE:
            return max(4096, min(CHUNK, int(self._state.value) // 20))
        return CHUNK

    async def pace(self, up: bool, nbytes: int) -> None:
        line = self._lines.get(up)
        if line is not None:
            await line.send(nbytes)

    def count_reset(self) -> None:
        self._counters.resets += 1

    def moved(self, up: bool, nbytes: int) -> None:
        if up:
            self._counters.bytes_up += nbytes
        else:
            self._counters.bytes_down += nbytes

    # --- accepting ------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._relay(reader, writer)
        finally:
            self._tasks.discard(task)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._state.fault is Fault.CUT:
            self._counters.refused += 1
            rst(writer)
            return
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                up_reader, up_writer = await asyncio.open_connection(
                    *self.upstream, limit=4 * CHUNK
                )
        except (OSError, TimeoutError) as exc:
            log.info("fault proxy: store %s:%s unreachable: %s", *self.upstream, exc)
            self._counters.refused += 1
            rst(writer)
            return
        if self._state.fault is Fault.CUT:  # cut while we were connecting
            self._counters.refused += 1
            rst(writer)
            rst(up_writer)
            return
        link = _Link(self, (reader, writer), (up_reader, up_writer))
        self._links.add(link)
        self._counters.connections += 1
        self._counters.open += 1
        try:
            await link.run()
        finally:
            self._links.discard(link)
            self._counters.open -= 1


def rst(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a dropped link or a crashed peer would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _Link:
    """One client connection and its connection to the store: two pipes, one per direction."""

    def __init__(self, proxy: FaultProxy, client: Stream, store: Stream) -> None:
        self.proxy = proxy
        self.client = client
        self.store = store
        self.dropped = False
        self.meter = BodyMeter(proxy.may_cut)
        self._task = asyncio.current_task()  # the accept task that runs this link

    def reset(self) -> None:
        """The proxy resets this connection (a fault, counted as such)."""
        if not self.dropped:
            self.proxy.count_reset()
            self.drop()

    def drop(self) -> None:
        """Reset both sides and stop the pipes at once."""
        if self.dropped:
            return
        self.dropped = True
        rst(self.client[1])
        rst(self.store[1])
        if self._task is not None and self._task is not asyncio.current_task():
            self._task.cancel()  # wakes pipes held in a delay or a throttle

    async def run(self) -> None:
        try:
            await self._pipes()
        except asyncio.CancelledError:
            if not self.dropped:
                raise
            if self._task is not None:
                self._task.uncancel()
        finally:
            for _, writer in (self.client, self.store):
                writer.close()

    async def _pipes(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._pipe(self.client[0], self.store[1], up=True))
                group.create_task(self._pipe(self.store[0], self.client[1], up=False))
        except* OSError:
            self.drop()  # one side broke: the other hears of it as a reset too

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, up: bool
    ) -> None:
        """Read, hold back (delay), write. The queue between keeps a delay from
        becoming a throughput cap: each chunk is due `delay` after it was read,
        not `delay` after the one before it was written."""
        held = Held()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._read(reader, held, up=up))
            group.create_task(self._write(writer, held, up=up))

    async def _read(self, reader: asyncio.StreamReader, held: Held, *, up: bool) -> None:
        loop = asyncio.get_running_loop()
        while True:
            data = await reader.read(self.proxy.read_size())
            cut_at = self.meter.feed(data, self.proxy.reset_limit()) if up and data else None
            if cut_at is not None:
                self.proxy.remember_cut(self.meter.target)
                data = data[:cut_at]
            await self.proxy.pace(up, len(data))
            await held.put((loop.time() + self.proxy.added_delay(), data, cut_at is not None))
            if not data or cut_at is not None:
                return

    async def _write(self, writer: asyncio.StreamWriter, held: Held, *, up: bool) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, data, reset = await held.get()
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            if data:
                writer.write(data)
                if reset:  # every byte up to the cut reaches the store before the RST
                    writer.transport.set_write_buffer_limits(high=0)
                await writer.drain()
                self.proxy.moved(up, len(data))
            if reset:
                self.reset()
                return
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
