"""The MinIO notification listener's thread (engine/s3/listen.py), without MinIO.

What a real store answers is proven end to end: SeaweedFS has no notifications and
the engine says so (tests/e2e/test_replication.py). Here: a store that cannot be
reached is reported once, as a hint source that gave up, and the thread ends."""

from __future__ import annotations

import socket
import threading

from engine.aliases import Alias
from engine.s3.listen import listen
from tests.conftest import eventually


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listeners() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "listen-photos"]


def test_an_unreachable_store_is_reported_once_and_the_thread_ends() -> None:
    alias = Alias("prod", f"http://127.0.0.1:{closed_port()}", "ak", "sk")
    keys: list[str] = []
    said: list[str] = []
    listen(alias, "photos", "", keys.append, said.append)
    eventually(lambda: said, timeout=30)
    eventually(lambda: not listeners(), timeout=30)
    assert len(said) == 1 and said[0].endswith(": bucket notifications unavailable"), said
    assert keys == []
