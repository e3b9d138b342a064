"""The API's server: a bound socket, uvicorn on the engine's loop, and its address.

The socket is bound before anything starts, so a taken port is a one-line error,
not a traceback after the engine began; the running engine's address is announced
in the state dir, so a console or CLI finds it without being told (discover.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator, Sequence

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route

from engine.aliases import AliasBook
from engine.engine import Attachment, Engine
from engine.errors import UserError
from engine.service.discover import announce, withdraw
from engine.service.http import create_app
from engine.service.local import LocalService


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the engine owns SIGINT/SIGTERM: it stops the API, then drains


def listen_socket(address: str) -> socket.socket:
    """Bind HOST:PORT now, so a taken port is a one-line error before anything starts."""
    host, sep, port = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UserError(f"--listen {address!r}: expected HOST:PORT, e.g. 127.0.0.1:7480")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as exc:
        sock.close()
        raise UserError(f"--listen {address}: {exc.strerror or exc}") from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve(app: Starlette, sock: socket.socket, stop: asyncio.Event) -> None:
    """Serve until `stop` is set; requests in progress get a moment to finish."""
    server = _Server(
        uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", workers=1)
    )
    running = asyncio.create_task(server.serve(sockets=[sock]))
    await stop.wait()
    server.should_exit = True
    await running


def attach_api(
    listen: socket.socket, token: str, metrics_public: bool = False, extra: Sequence[Route] = ()
) -> Attachment:
    """The HTTP API as an engine attachment: the engine knows nothing of HTTP."""

    async def serve_beside(engine: Engine, stop: asyncio.Event) -> None:
        state_dir = engine.config.state_dir
        service = LocalService(engine.state, AliasBook(state_dir / "aliases.json"), "api", engine)
        announce(state_dir, url_of(listen))
        try:
            await serve(create_app(service, token, metrics_public, extra), listen, stop)
        finally:
            withdraw(state_dir)

    return serve_beside


def url_of(sock: socket.socket) -> str:
    """How a client on this machine reaches a bound socket (a wildcard bind via loopback)."""
    host, port = sock.getsockname()[:2]
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
