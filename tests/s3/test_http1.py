"""The data path's HTTP/1.1 pool (engine/s3/http1.py) against a real local socket server.

Each test's server is an asyncio server with a script of what it sends, byte by
byte where it matters: chunked bodies, a close mid-body, a slow or stalled
header, S3 error XML, idle connections closed under the pool. These are the
cases a keep-alive pool gets wrong; what S3 itself answers is proven by the
real-server suites (tests/replication/test_store_contract.py, tests/e2e/).
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from engine.errors import NotFoundError, PermanentError, TransientError
from engine.s3.client import S3Client
from engine.s3.http1 import HIGH_WATER, ConnectionClosed, ProtocolError
from engine.s3.pool import Pool
from tests.conftest import until

Handler = Callable[["Server", int, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Server:
    """Counts the connections it accepted and keeps every request it read."""

    handler: Handler
    connections: int = 0
    requests: list[Request] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    handlers: list[asyncio.Task[None]] = field(default_factory=list)
    closed: int = 0  # connections that ended (the client closed, or the handler returned)
    url: str = ""

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        self.handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await self.handler(self, self.connections, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.closed += 1
            writer.close()

    async def read(self, reader: asyncio.StreamReader) -> Request:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        line, *lines = head.split("\r\n")[:-2]
        method, target, _ = line.split(" ")
        headers = {k.lower(): v for k, v in (h.split(": ", 1) for h in lines)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        request = Request(method, target, headers, body)
        self.requests.append(request)
        return request


def response(body: bytes = b"", status: str = "200 OK", extra: str = "") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[Server]]]:
    servers: list[tuple[asyncio.Server, Server]] = []

    async def start(handler: Handler) -> Server:
        server = Server(handler)
        listening = await asyncio.start_server(server._accept, "127.0.0.1", 0)
        servers.append((listening, server))
        server.url = f"http://127.0.0.1:{listening.sockets[0].getsockname()[1]}"
        return server

    yield start
    for listening, server in servers:
        listening.close()
        for writer in server.writers:
            if not writer.transport.is_closing():
                writer.transport.abort()  # a handler waiting for a request sees the end
        if server.handlers:
            await asyncio.wait(server.handlers, timeout=10)


def get(pool: Pool, target: str = "/b/k", **headers: str):  # type: ignore[no-untyped-def]
    return pool.request("GET", target, {"Host": "test", **headers})


async def keep_answering(serve: Callable[[Handler], Awaitable[Server]], body: bytes) -> Server:
    """A server that answers every request on every connection with `body`."""

    async def handler(
        server: Server, n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            await server.read(reader)
            writer.write(response(body, extra="x-amz-version-id: v1\r\n"))
            await writer.drain()

    return await serve(handler)


async def test_keep_alive_reuses_one_connection_for_sequential_requests(serve) -> None:
    server = await keep_answering(serve, b"hello")
    pool = Pool(server.url)
    for _ in range(5):
        async with get(pool) as resp:
            assert resp.status == 200
            assert await resp.read() == b"hello"
    assert server.connections == 1
    assert len(server.requests) == 5
    assert pool.idle == 1
    await pool.close()


async def test_a_chunked_body_arrives_whole_and_the_connection_is_reused(serve) -> None:
    chunks = [b"a" * 10, b"b" * 3000, b"c"]

    async def handler(
        server: Server, n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            await server.read(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for chunk in chunks:  # each in its own segment, as a streaming server sends them
                writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    server = await serve(handler)
    pool = Pool(server.url)
    async with get(pool) as resp:
        assert resp.headers["transfer-encoding"] == "chunked"
        assert await resp.read() == b"".join(chunks)
    async with get(pool) as resp:
        pieces = [piece async for piece in resp.iter_chunked(1000)]
    assert b"".join(pieces) == b"".join(chunks)
    assert max(len(p) for p in pieces) <= 1000
    assert server.connections == 1
    await pool.close()


async def test_a_length_body_in_segments_arrives_whole_and_what_follows_it_is_not_reused(
    serve,
) -> None:
    """Past the header, a Content-Length body is counted rather than parsed: each segment
    arrives as sent, cut at n, and bytes beyond the length never become the next answer."""
    body = bytes(range(256)) * 40  # 10,240 bytes

    async def handler(
        server: Server, n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            await server.read(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
            writer.write(body[:10])  # with the header: parsed
            await writer.drain()
            for at in range(10, len(body), 3000):  # one segment each: counted
                last = at + 3000 >= len(body)
                writer.write(
                    body[at : at + 3000] + (b"HTTP/1.1 200 OK" if last and n == 1 else b"")
                )
                await writer.drain()
                await asyncio.sleep(0.01)  # the server's pace, not the test's synchronisation

    server = await serve(handler)
    pool = Pool(server.url)
    async with get(pool) as resp:
        pieces = [piece async for piece in resp.iter_chunked(2048)]
        assert await resp.read_some(2048) == b""  # the end, said as an empty piece
    assert b"".join(pieces) == body
    assert max(map(len, pieces)) <= 2048
    assert pool.idle == 0  # the first answer carried more than its length
    async with get(pool) as resp:
        assert await resp.readexactly(len(body)) == body
    assert server.connections == 2 and pool.idle == 1
    await pool.close()


async def test_a_second_answer_in_the_same_segment_is_not_ours_and_not_reused(serve) -> None:
    """A whole response, then the start of another before any second request: our body is
    the first one's, its headers stay ours, and the connection is not given back."""

    async def handler(
        server: Server, n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            await server.read(reader)
            extra = response(b"other", "404 Not Found", "x-amz-version-id: v2\r\n")
            writer.write(response(b"ours", extra="x-amz-version-id: v1\r\n") + extra * (n == 1))
            await writer.drain()

    server = await serve(handler)
    pool = Pool(server.url)
    async with get(pool) as resp:
        assert (resp.status, resp.headers["x-amz-version-id"]) == (200, "v1")
        assert await resp.read() == b"ours"
        with pytest.raises(asyncio.IncompleteReadError):
            await resp.readexactly(1)  # past the end: said as such
    assert pool.idle == 0
    async with get(pool) as resp:
        assert await resp.read() == b"ours"
    assert server.connections == 2 and pool.idle == 1
    await pool.close()


async def test_a_close_mid_body_is_a_connection_error_and_not_reused(serve) -> None:

    async def handler(
        server: Server, n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await server.read(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
        await writer.drain()  # then the handler returns and the server closes

    server = await serve(handler)
    pool = Pool(server.url)
    async with get(pool) as resp:
        with pytest.raises(ConnectionClosed, match="mid-body"):
            await resp.readexactly(1000)
    assert pool.idle == 0

    client = S3Client(server.url, "ak", "sk")
    with pytest.raises(TransientError) as caught:
        async with client.get("b", "k") as (_, stream):
            await stream.readexactly(1000)
    assert caught.value.code == "Connection"
    assert caught.value.link_down
    assert caught.value.endpoint == server.url
    await client.close()
    await pool.close()


async def test_a_header_sent_byte_by_byte_is_parsed(serve) -> None:
    raw = response(b"slow", extra='ETag: "abc"\r\nx-amz-meta-colour: blue\r\n')

    async def handler(
        server: Server, n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await server.read(reader)
        for i in range(len(raw)):
            writer.write(raw[i : i + 1])
            await writer.drain()
            await asyncio.sleep(0.002)  # the server's pace, not the test's synchronisation

    server = await serve(handler)
    client = S3Client(server.url, "ak", "sk")
    async with client.get("b", "k") as (head, stream):
        assert await stream.readexactly(4) == b"slow"
    assert head.etag == "abc"
    assert head.metadata == {"colour": "blue"}
    await client.close()


async def test_a_stalled_header_times_out_as_a_transient_connection_error(serve) -> None:
    hold = asyncio.Event()

    async def handler(
        server: Server, n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await server.read(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-")  # and then nothing
        await writer.drain()
        await hold.wait()

    server = await serve(handler)
    client = S3Client(server.url, "ak", "sk", read_timeout=0.5)
    with pytest.raises(TransientError) as caught:
        async with asyncio.timeout(30):  # the read timeout, not this deadline, must end it
            await client.head("b", "k")
    assert caught.value.code == "Connection"
    assert "timed out" in caught.value.reason or "no answer" in caught.value.reason
    hold.set()
    await client.close()


async def test_s3_error_xml_keeps_its_class_and_code_and_the_connection(serve) -> None:
    slow_down = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
        b"<Message>Please reduce your request rate.</Message></Error>"
    )
    no_key = b"<Error><Code>NoSuchKey</Code><Message>The key does not exist</Message></Error>"
    answers = [
        response(slow_down, "503 Service Unavailable"),
        response(no_key, "404 Not Found"),
        response(b"<Error><Code>AccessDenied</Code></Error>", "403 Forbidden"),
        response(b"ok", extra='x-amz-version-id: v7\r\nETag: "e1"\r\n'),
    ]

    async def handler(
        server: Server, n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        for answer in answers:
            await server.read(reader)
            writer.write(answer)
            await writer.drain()

    server = await serve(handler)
    client = S3Client(server.url, "ak", "sk")
    with pytest.raises(TransientError) as slow:
        await client.get_tags("b", "k")
    assert slow.value.code == "SlowDown"
    assert not slow.value.link_down
    assert "Please reduce your request rate." in slow.value.reason
    with pytest.raises(NotFoundError) as missing:
        async with client.get("b", "k"):
            pass
    assert missing.value.code == "NoSuchKey"
    with pytest.raises(PermanentError) as denied:
        await client.delete("b", "k")
    assert denied.value.code == "AccessDenied"
    assert await client.put("b", "k", b"data", {}) == ("v7", "e1")
    assert server.connections == 1  # an error read whole leaves the connection usable
    put = server.requests[-1]
    assert put.body == b"data"
    assert put.headers["content-length"] == "4"
    assert "content-length" in put.headers["authorization"]  # signed as sent
    await client.close()


async def test_a_head_with_a_length_but_no_body_leaves_the_connection_reusable(serve) -> None:

    async def handler(
        server: Server, n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while True:
            request = await server.read(reader)
            if request.method == "HEAD":
                writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 5000\r\nETag: "h"\r\n\r\n')
            else:
                writer.write(response(b"after"))
            await writer.drain()

    server = await serve(handler)
    client = S3Client(server.url, "ak", "sk")
    head = await client.head("b", "k")
    assert (head.size, head.etag) == (5000, "h")
    async with client.get("b", "k") as (_, stream):
        assert await stream.readexactly(5) == b"after"
    assert server.connections == 1
    await client.close()


async def test_an_idle_connection_the_server_closed_is_not_used(serve) -> None:

    async def handler(
        server: Server, n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await server.read(reader)
        writer.write(response(b"once"))  # keep-alive by HTTP/1.1 default, then closed
        await writer.drain()

    server = await serve(handler)
    pool = Pool(server.url)
    async with get(pool) as resp:
        assert await resp.read() == b"once"
    assert pool.idle == 1
    await until(lambda: all(c.closed for c in pool._idle), 30)
    async with get(pool) as resp:
        assert await resp.read() == b"once"
    assert server.connections == 2
    await pool.close()


def closes_the_second_request_unanswered() -> Handler:
    """Connection 1 answers its first request and drops the second without a byte, as a
    server closing an idle connection does when a request crosses its close."""

    async def handler(
        server: Server, n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await server.read(reader)
        writer.write(response(b"first", extra="x-amz-version-id: v1\r\n"))
        await writer.drain()
        if n == 1:
            await server.read(reader)  # and close without answering

    return handler


async def test_a_get_lost_on_a_closing_idle_connection_is_sent_again_once(serve) -> None:
    server = await serve(closes_the_second_request_unanswered())
    pool = Pool(server.url)
    for _ in range(2):
        async with get(pool) as resp:
            assert await resp.read() == b"first"
    assert server.connections == 2
    assert [r.method for r in server.requests] == ["GET", "GET", "GET"]
    await pool.close()


async def test_a_put_lost_on_a_closing_idle_connection_is_not_sent_twice(serve) -> None:
    server = await serve(closes_the_second_request_unanswered())
    client = S3Client(server.url, "ak", "sk")
    assert await client.put("b", "k", b"one", {}) == ("v1", "")
    with pytest.raises(TransientError) as caught:
        await client.put("b", "k", b"two", {})
    assert caught.value.code == "Connection"
    assert [r.body for r in server.requests] == [b"one", b"two"]  # the second: once
    await client.close()


async def test_leaving_a_body_unread_closes_the_connection(serve) -> None:
    size = 16 * HIGH_WATER  # more than the socket buffers hold while we stop reading
    server = await keep_answering(serve, b"z" * size)
    pool = Pool(server.url)
    async with get(pool) as resp:
        assert len(await resp.readexactly(10)) == 10
    assert pool.idle == 0
    async with get(pool) as resp:
        assert len(await resp.read()) == size
    assert server.connections == 2
    assert pool.idle == 1
    await pool.close()


async def test_a_large_body_is_read_with_backpressure(serve) -> None:
    size = 16 * HIGH_WATER

    async def handler(
        server: Server, n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        await server.read(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size)
        for _ in range(size // 65536):
            writer.write(b"q" * 65536)
            await writer.drain()

    server = await serve(handler)
    pool = Pool(server.url)
    got = 0
    async with get(pool) as resp:
        got += len(await resp.readexactly(65536))
        # The server is held back by TCP once the client stops reading its socket.
        await until(lambda: server.writers[0].transport.get_write_buffer_size() > 0, 30)
        assert resp.buffered <= HIGH_WATER + 512 * 1024
        async for piece in resp.iter_chunked(256 * 1024):
            got += len(piece)
    assert got == size
    assert pool.idle == 1
    await pool.close()


async def test_a_streamed_body_is_sent_exactly_with_its_length(serve) -> None:
    server = await keep_answering(serve, b"")
    pool = Pool(server.url)
    parts = [b"p" * 300_000, b"q" * 5, b"r" * 70_000]

    async def body() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    total = str(sum(map(len, parts)))
    headers = {"Host": "test", "Content-Length": total}
    async with pool.request("PUT", "/b/k", headers, body()) as resp:
        assert resp.status == 200
        await resp.read()
    assert server.requests[0].body == b"".join(parts)
    await pool.close()


async def test_a_header_with_a_line_break_is_refused_before_sending(serve) -> None:
    server = await keep_answering(serve, b"")
    pool = Pool(server.url)
    with pytest.raises(ProtocolError, match="line break"):
        async with pool.request("GET", "/b/k", {"Host": "t", "x-amz-meta-a": "1\r\nEvil: 2"}):
            pass
    async with get(pool) as resp:
        await resp.read()
    assert len(server.requests) == 1
    await pool.close()


async def test_a_refused_connection_is_a_link_down_error() -> None:
    listening = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    listening.close()
    await listening.wait_closed()
    client = S3Client(f"http://127.0.0.1:{port}", "ak", "sk")
    with pytest.raises(TransientError) as caught:
        await client.list_buckets()
    assert caught.value.link_down
    assert f"Cannot connect to host 127.0.0.1:{port}: Connection refused" in caught.value.reason
    await client.close()


async def test_a_pool_left_alone_closes_its_idle_connections(serve) -> None:
    server = await keep_answering(serve, b"idle")
    pool = Pool(server.url, idle_timeout=0.2)
    async with get(pool) as resp:
        assert await resp.read() == b"idle"
    assert pool.idle == 1
    await until(lambda: server.closed == 1, 30)  # no request needed to notice
    assert pool.idle == 0
    await pool.close()


async def test_a_reset_mid_upload_is_a_connection_error(serve) -> None:
    async def handler(server: Server, n: int, reader: asyncio.StreamReader, writer) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(256 * 1024)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # a TCP reset, as a dropped link sends

    server = await serve(handler)
    client = S3Client(server.url, "ak", "sk")
    size = 64 * 1024 * 1024

    async def body() -> AsyncIterator[bytes]:
        piece = b"u" * (1024 * 1024)
        for _ in range(size // len(piece)):
            yield piece

    headers = {"Content-Length": str(size), "Content-MD5": "x"}
    with pytest.raises(TransientError) as caught:
        async with asyncio.timeout(60):
            await client.put("b", "k", body(), headers)
    assert caught.value.code == "Connection"
    await client.close()
