"""A lean HTTP/1.1 client for the data path: one exchange, request to last body byte.

Why not aiohttp: on a bulk copy of small objects its per-request machinery
(ClientRequest/ClientResponse, yarl URLs, multidicts, its header parser) was 46%
of the engine's main-thread CPU, about 0.15 ms a request (copy-path-profile.md,
finding 4), and CPU per object is what bounds a copy on two shared cores. The
data path needs far less than a general client: a few methods to one host,
bodies with a known length, no redirects, cookies, proxies or compression. So
here a request is one header block written in one piece, the response is parsed
by llhttp (httptools, the parser uvicorn uses) into a plain dict, and a body is
a queue of the bytes the socket gave, read with backpressure.

The socket itself is wire.py, the keep-alive pool pool.py. Failures are OSError values (ConnectionClosed,
ProtocolError) or TimeoutError: the S3 client (client.py) maps them, as it maps
S3 error XML, to the error tree.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Protocol

import httptools

from engine.s3.wire import Connection, ConnectionClosed, HTTPError, ProtocolError

__all__ = ["ConnectionClosed", "HTTPError", "ProtocolError", "Response"]

HIGH_WATER = 1024 * 1024  # body bytes held before the socket stops being read
Body = bytes | AsyncIterator[bytes | memoryview]


class _SecondAnswer(Exception):
    """Raised inside llhttp's callback to stop it at bytes beyond the response."""


class Lender(Protocol):
    """Where an exchange gets its connection and gives it back (pool.Pool)."""

    read_timeout: float

    async def acquire(self) -> tuple[Connection, bool]: ...

    def release(self, conn: Connection, reusable: bool) -> None: ...


class Response:
    """One exchange: sent on entering the context, its connection given back on leaving.

    Reading: `read()` (the whole body), `readexactly(n)`, `read_some(n)` and
    `iter_chunked(n)` (the Stream of engine/s3/types.py). The connection goes back to the pool only when
    the body was received to its end; leaving before closes it, since the rest
    would otherwise be taken for the next response.
    """

    __slots__ = (
        "_body",
        "_chunks",
        "_conn",
        "_done",
        "_error",
        "_framed",
        "_keep_alive",
        "_left",
        "_parser",
        "_pool",
        "_size",
        "_started",
        "_waiter",
        "_want",
        "headers",
        "method",
        "status",
        "target",
    )

    def __init__(
        self, pool: Lender, method: str, target: str, headers: dict[str, str], body: Body | None
    ) -> None:
        self._pool, self.method, self.target, self.headers = pool, method, target, headers
        self._body = body
        self.status = 0
        self._conn: Connection | None = None
        self._parser: httptools.HttpResponseParser | None = None
        self._chunks: deque[bytes | memoryview] = deque()
        self._size = 0
        self._started = self._done = self._keep_alive = self._framed = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._want = 1  # body bytes the reader waits for: fewer wake it for nothing
        self._left = -1  # body bytes still to come, once a Content-Length body bypasses llhttp

    # -- the context: send, then hand the connection back ---------------------------------

    async def __aenter__(self) -> Response:
        pool, head = self._pool, _header_block(self.method, self.target, self.headers)
        self.headers = {}
        for attempt in (1, 2):
            conn, reused = await pool.acquire()
            self._begin(conn)
            try:
                await self._send(conn, head)
                while not self._started:
                    await self._wait()
                return self
            except ConnectionClosed:
                self._finish()
                # A reused connection the server had closed before it read a byte of
                # ours: a safe method is sent again once on a fresh one. A PUT is not,
                # since a second copy would be a second version on a versioned bucket.
                if not (reused and attempt == 1 and self._safe_retry()):
                    raise
            except BaseException:
                self._finish()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._finish()

    def _safe_retry(self) -> bool:
        return self.method in ("GET", "HEAD") and self._body is None and not self._chunks

    def _begin(self, conn: Connection) -> None:
        self._conn, conn.exchange = conn, self
        self._parser = httptools.HttpResponseParser(self)
        self.headers, self.status, self._error = {}, 0, None
        self._started = self._done = self._framed = False
        self._left = -1

    def _finish(self) -> None:
        """Give the connection back if its response was read whole, else close it."""
        conn, self._conn = self._conn, None
        self._parser = None  # the parser refers back to us: no cycle left for the GC
        if conn is None:
            return
        conn.exchange = None
        reusable = self._done and self._keep_alive and self._error is None
        self._pool.release(conn, reusable and not conn.closed)

    async def _send(self, conn: Connection, head: bytes) -> None:
        transport, body = conn.transport, self._body
        assert transport is not None
        if conn.closed:  # lost between the pool's check and now
            raise ConnectionClosed("connection closed before sending")
        if body is None or isinstance(body, bytes | bytearray | memoryview):
            transport.write(head + body if body else head)
            return
        transport.write(head)
        timeout = self._pool.read_timeout
        async for piece in body:
            if self._started:  # answered before the body was all sent (an error, say)
                self._keep_alive = False
                return
            if conn.closed:
                raise self._error or ConnectionClosed("connection closed while sending")
            transport.write(piece)
            if conn.writable:
                continue
            try:
                async with asyncio.timeout(timeout):
                    await conn.drain()
            except ConnectionClosed:
                if not self._started:
                    raise

    # -- the parser's callbacks (httptools calls them from feed_data) -------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("utf-8", "surrogateescape")
        if key in ("content-length", "transfer-encoding"):
            self._framed = True
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_message_begin(self) -> None:
        if self._done:  # a second answer to one request, in the same segment: stop there
            raise _SecondAnswer

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        self.status = self._parser.get_status_code()
        self._keep_alive = self._parser.should_keep_alive()
        self._started = True
        if self.method == "HEAD":  # a length, but no body: llhttp cannot be told so
            self._done = True
        length = self.headers.get("content-length", "").strip()
        if (
            length.isdigit()
            and "transfer-encoding" not in self.headers
            and self.status >= 200
            and self.status not in (204, 304)
        ):
            self._left = int(length)
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._left -= len(body)
        self._received(body)

    def _received(self, body: bytes) -> None:
        self._chunks.append(body)
        self._size += len(body)
        if self._size >= self._want:
            self._wake()
            if self._size >= HIGH_WATER and self._conn is not None:
                self._conn.pause_reading()

    def on_message_complete(self) -> None:
        self._done = True
        self._wake()

    # -- what the connection tells us -----------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self._done:  # more than the response said it had: do not reuse this connection
            self._keep_alive = False
            return
        if self._parser is None:  # a body of known length, past llhttp: taken as it comes
            self._raw(data)
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _SecondAnswer):  # ours is whole: keep it, not this
                self._keep_alive = False
                return
            self._fail(ProtocolError(f"malformed HTTP response: {exc}"))
            return
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"malformed HTTP response: {exc}"))
            return
        if self._left > 0 and not self._done:
            # The rest of a Content-Length body needs no parsing: counted, not copied again
            # (llhttp hands each piece over as a new bytes object, one more copy per byte).
            self._parser = None

    def _raw(self, data: bytes) -> None:
        left = self._left
        if len(data) < left:
            self._left = left - len(data)
            self._received(data)
            return
        if len(data) > left:  # more than the response said it had: do not reuse this
            self._keep_alive = False
            data = data[:left]
        self._left = 0
        self._received(data)
        self.on_message_complete()

    def lost(self, exc: Exception | None) -> None:
        if self._done:
            return
        if self._started and not self._framed:  # a body that ends with the connection
            self._done, self._keep_alive = True, False
            self._wake()
            return
        where = "mid-body" if self._started else "before the response"
        self._fail(ConnectionClosed(f"connection closed {where}" + (f": {exc}" if exc else "")))

    def _fail(self, error: BaseException) -> None:
        self._error = error
        if self._conn is not None:
            self._conn.close()
        self._wake()

    # -- waiting, with the per-request read timeout -----------------------------------------

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _expire(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(TimeoutError(f"no answer in {self._pool.read_timeout:g} s"))

    async def _wait(self) -> None:
        """Until the connection has news for us, at most the read timeout."""
        if self._error is not None:
            raise self._error
        conn = self._conn
        if conn is None:
            raise ConnectionClosed("the response was left before it was read")
        if conn.closed:  # lost before this exchange began to listen
            self.lost(None)
            if self._error is not None:
                raise self._error
            return
        conn.resume_reading()
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        timer = loop.call_later(self._pool.read_timeout, self._expire)
        try:
            await self._waiter
        except TimeoutError:
            self._fail(TimeoutError(f"no answer in {self._pool.read_timeout:g} s"))
            raise
        finally:
            timer.cancel()
            self._waiter = None
        if self._error is not None:
            raise self._error

    @property
    def buffered(self) -> int:
        """Body bytes received and not yet read (bounded near HIGH_WATER by backpressure)."""
        return self._size

    # -- the body ----------------------------------------------------------------------------

    def _take(self, n: int) -> bytes:
        """The next `n` buffered bytes, each copied once at most: the rest of a chunk
        stays a view of it (a large copy reads 256 KiB pieces out of whatever the
        socket gave, and slicing bytes copied each byte up to three times)."""
        if not n:
            return b""
        chunks = self._chunks
        first = chunks[0]
        size = len(first)
        if size == n:
            chunks.popleft()
            piece = first if type(first) is bytes else bytes(first)
        elif size > n:
            view = memoryview(first)
            piece, chunks[0] = bytes(view[:n]), view[n:]
        else:
            parts: list[bytes | memoryview] = []
            left = n
            while left:
                chunk = chunks.popleft()
                if len(chunk) > left:
                    view = memoryview(chunk)
                    chunks.appendleft(view[left:])
                    chunk = view[:left]
                parts.append(chunk)
                left -= len(chunk)
            piece = b"".join(parts)
        self._size -= n
        return piece

    async def readexactly(self, n: int) -> bytes:
        """Exactly `n` bytes of the body; IncompleteReadError if it ends first."""
        while self._size < n:
            if self._done:
                raise asyncio.IncompleteReadError(self._take(self._size), n)
            self._want = n
            await self._wait()
        return self._take(n) if n else b""

    async def read_some(self, n: int) -> bytes | memoryview:
        """What has arrived, up to `n` bytes, as the socket gave it (no join, no copy: a
        view when a piece is longer); at least one byte, or b"" at the end of the body."""
        while not self._size:
            if self._done:
                return b""
            self._want = 1
            await self._wait()
        chunks = self._chunks
        piece = chunks.popleft()
        if len(piece) > n:
            view = memoryview(piece)
            piece = view[:n]
            chunks.appendleft(view[n:])
        self._size -= len(piece)
        return piece

    async def iter_chunked(self, n: int) -> AsyncIterator[bytes | memoryview]:
        """The body as it arrives, in pieces of at most `n` bytes."""
        while piece := await self.read_some(n):
            yield piece

    async def read(self) -> bytes:
        """The whole body (S3's XML answers, small objects)."""
        while not self._done:
            self._want = 1 << 62  # only the end of the body wakes us
            await self._wait()
        return self._take(self._size) if self._size else b""


def _header_block(method: str, target: str, headers: dict[str, str]) -> bytes:
    """The request line and headers, encoded once. A value with a line break in it would
    be a second header (or a second request): refused, before anything is sent."""
    text = f"{method} {target} HTTP/1.1\r\n" + "".join(
        [f"{name}: {value}\r\n" for name, value in headers.items()]
    )
    if text.count("\n") != len(headers) + 1 or text.count("\r") != len(headers) + 1:
        raise ProtocolError("a header name or value holds a line break")
    return (text + "\r\n").encode("utf-8", "surrogateescape")
