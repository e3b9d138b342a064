"""Keep-alive HTTP/1.1 connections to one endpoint (the exchange itself is http1.py).

One pool per S3 client, so per endpoint: the copy's GETs and PUTs each go to one
host, and a bulk copy of small objects spends most of its requests on reused
connections, with no TCP or TLS handshake each.
"""

from __future__ import annotations

import asyncio
import os
import ssl
from urllib.parse import urlsplit

from engine.s3.http1 import Body, Response
from engine.s3.wire import ConnectFailed, Connection

__all__ = ["Pool"]


class Pool:
    """Keep-alive connections to one endpoint, at most `limit` at once.

    A connection is reused only after its response was read whole, and not after
    `idle_timeout` seconds unused: servers close idle connections (SeaweedFS, nginx
    in front of MinIO), and a request sent on one the server is closing is lost.
    Idle ones are closed by a sweep once that old, so a pool left alone holds no
    sockets open on the server (or on a proxy waiting for its links to end).
    """

    def __init__(
        self,
        url: str,
        *,
        ssl_context: ssl.SSLContext | None = None,
        limit: int = 64,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        idle_timeout: float = 15.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = (
            (ssl_context or ssl.create_default_context()) if parts.scheme == "https" else None
        )
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.idle_timeout = idle_timeout
        self._limit = limit
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots = asyncio.Semaphore(limit)
        self._idle: list[Connection] = []
        self._open: set[Connection] = set()
        self._sweeper: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"Pool({self.host}:{self.port}, idle={len(self._idle)}, open={len(self._open)})"

    def request(
        self, method: str, target: str, headers: dict[str, str], body: Body | None = None
    ) -> Response:
        """`async with pool.request(...) as response`. `headers` must hold Host, and
        Content-Length for any body: the pool adds nothing, so what was signed is sent."""
        return Response(self, method, target, headers, body)

    async def acquire(self) -> tuple[Connection, bool]:
        """A connection for one exchange, and whether it was used before."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new asyncio.run: the old loop's sockets are gone
            self._loop, self._slots = loop, asyncio.Semaphore(self._limit)
            self._idle, self._open, self._sweeper = [], set(), None
        await self._slots.acquire()
        try:
            now = loop.time()
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed and now - conn.idle_since < self.idle_timeout:
                    return conn, True
                self._drop(conn)
            return await self._connect(), False
        except BaseException:
            self._slots.release()
            raise

    async def _connect(self) -> Connection:
        loop = asyncio.get_running_loop()
        server_hostname = self.host if self.ssl is not None else None
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    Connection, self.host, self.port, ssl=self.ssl, server_hostname=server_hostname
                )
        except TimeoutError:
            raise ConnectFailed(self._cannot(f"no answer in {self.connect_timeout:g} s")) from None
        except OSError as exc:
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            raise ConnectFailed(self._cannot(why)) from exc
        self._open.add(conn)
        return conn

    def _cannot(self, why: str) -> str:
        return f"Cannot connect to host {self.host}:{self.port}: {why}"

    def release(self, conn: Connection, reusable: bool) -> None:
        if reusable:
            loop = asyncio.get_running_loop()
            conn.idle_since = loop.time()
            self._idle.append(conn)
            if self._sweeper is None:
                self._sweeper = loop.call_later(self.idle_timeout, self._sweep)
        else:
            self._drop(conn)
        self._slots.release()

    def _sweep(self) -> None:
        """Close what has been idle for `idle_timeout`; look again while any is idle."""
        assert self._loop is not None
        self._sweeper = None
        expired = self._loop.time() - self.idle_timeout
        for conn in [c for c in self._idle if c.closed or c.idle_since <= expired]:
            self._idle.remove(conn)
            self._drop(conn)
        if self._idle:
            oldest = min(c.idle_since for c in self._idle)
            delay = max(0.0, oldest + self.idle_timeout - self._loop.time())
            self._sweeper = self._loop.call_later(delay, self._sweep)

    def _drop(self, conn: Connection) -> None:
        conn.close()
        self._open.discard(conn)

    @property
    def idle(self) -> int:
        """Connections open and unused (tests read it to prove reuse)."""
        return len(self._idle)

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self._open):
            conn.close()
        self._open.clear()
        self._idle.clear()
