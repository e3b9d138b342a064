"""The socket under the HTTP/1.1 client (http1.py): bytes in, bytes out, flow control.

A Connection knows nothing of HTTP: it hands what it receives to the exchange in
progress (http1.Response) and tells it when the peer went away. Kept apart so the
exchange's parsing and the pool's bookkeeping read on their own.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class HTTPError(OSError):
    """The exchange failed below HTTP's status line: the link or the peer is at fault."""


class ConnectionClosed(HTTPError):
    """The server closed the connection before the response was complete."""


class ProtocolError(HTTPError):
    """The server's bytes are not an HTTP/1.1 response, or the request was not framable."""


class ConnectFailed(HTTPError):
    """No connection could be made (refused, unreachable, TLS refused, timed out)."""


class Exchange(Protocol):
    """What a connection feeds: the response being read on it."""

    def feed(self, data: bytes) -> None: ...

    def lost(self, exc: Exception | None) -> None: ...


class Connection(asyncio.Protocol):
    """One socket. It feeds the bytes it receives to the exchange in progress, if any."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self._closed = False
        self.idle_since = 0.0
        self.reading = True
        self._paused = False
        self._drained: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.exchange is None:  # bytes between responses: the peer is out of step
            self.close()
            return
        self.exchange.feed(data)

    def eof_received(self) -> bool:
        return False  # close the transport: a half-closed HTTP/1.1 connection is done

    @property
    def closed(self) -> bool:
        """No more writes: lost, closed by us, or closing (uvloop refuses a write then,
        before `connection_lost` has been called)."""
        return self._closed or self.transport is None or self.transport.is_closing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        if self.exchange is not None:
            self.exchange.lost(exc)
        self._wake_writer(exc or ConnectionClosed("connection closed while sending"))

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        self._wake_writer(None)

    def _wake_writer(self, exc: BaseException | None) -> None:
        waiter, self._drained = self._drained, None
        if waiter is not None and not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)

    @property
    def writable(self) -> bool:
        """The socket takes more now (no need to `drain`)."""
        return not self._paused and not self.closed

    async def drain(self) -> None:
        """Wait until the socket takes more: a streamed body goes as fast as the peer reads."""
        if self.closed:
            raise ConnectionClosed("connection closed while sending")
        if self._paused:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    def pause_reading(self) -> None:
        if self.reading and not self.closed and self.transport is not None:
            self.reading = False
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if not self.reading and not self.closed and self.transport is not None:
            self.reading = True
            self.transport.resume_reading()

    def close(self) -> None:
        self._closed = True
        if self.transport is not None:
            self.transport.close()
