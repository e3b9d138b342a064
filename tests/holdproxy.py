"""A TCP proxy in front of a store that can hold one request back: the late write of a
process that died after sending it.

A SIGKILLed engine's last request still reaches the server, and the server may finish it
after the engine is gone; how late depends on the server's load, which a test cannot
choose. This proxy makes "late" a decision: the first request whose request line matches
is read whole, `on_held` runs (the test kills the engine there), and the request goes on
to the store only when the test calls `release()`. Everything else passes through as it
comes, and every request line is recorded, so a test can wait for what the engine asked.

Requests are framed by Content-Length (the engine sends one with every body, aws-chunked
ones included), so one connection's requests are told apart exactly.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Callable

HEAD_END = b"\r\n\r\n"


class HoldProxy:
    def __init__(self, upstream_port: int, hold: str, on_held: Callable[[], None]) -> None:
        """Hold the first request whose line ("PUT /bucket/key?query HTTP/1.1") matches
        the regular expression `hold`."""
        self._upstream = upstream_port
        self._hold = re.compile(hold)
        self._on_held = on_held
        self._released = threading.Event()
        self._lock = threading.Lock()
        self.held = threading.Event()  # the request is held (on_held has run)
        self.forwarded = threading.Event()  # and has gone on to the store
        self.lines: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def release(self) -> None:
        self._released.set()

    def asked(self, pattern: str, since: int = 0) -> bool:
        """Has a request line from the `since`-th on matched `pattern` (a regular expression)?"""
        with self._lock:
            return any(re.search(pattern, line) for line in self.lines[since:])

    def close(self) -> None:
        self._released.set()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            store = socket.create_connection(("127.0.0.1", self._upstream))
        except OSError:
            client.close()
            return
        threading.Thread(target=_pipe, args=(store, client), daemon=True).start()
        pending = b""
        try:
            while True:
                request, pending = _one_request(client, pending)
                if request is None:
                    break
                line = request.split(b"\r\n", 1)[0].decode(errors="replace")
                with self._lock:
                    self.lines.append(line)
                    hold = not self.held.is_set() and bool(self._hold.search(line))
                    if hold:
                        self.held.set()
                if hold:
                    self._on_held()
                    self._released.wait()
                store.sendall(request)
                if hold:
                    self.forwarded.set()
        except OSError:
            pass
        finally:
            # Half-closed, as a dead client's socket: the store still answers what it was
            # sent (the pipe back closes both when it is done).
            with contextlib.suppress(OSError):
                store.shutdown(socket.SHUT_WR)


def _one_request(sock: socket.socket, pending: bytes) -> tuple[bytes | None, bytes]:
    """The next whole request (head and body) on `sock`, and what was read beyond it.
    None at the end of the stream: the client closed or died (a request it sent whole
    was returned before)."""
    while HEAD_END not in pending:
        data = sock.recv(256 * 1024)
        if not data:
            return None, b""
        pending += data
    head, _, rest = pending.partition(HEAD_END)
    match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    length = int(match.group(1)) if match else 0
    while len(rest) < length:
        data = sock.recv(256 * 1024)
        if not data:
            return None, b""
        rest += data
    return head + HEAD_END + rest[:length], rest[length:]


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(256 * 1024):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        _close(sink)
        _close(source)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
