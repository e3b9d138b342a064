"""Every CLI command through the Service: on the state dir, and with --connect on a real
`mirrorline run --listen`; each change leaves an audit row naming who made it."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import sqlite3
import subprocess
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest

from engine.config import EngineConfig
from engine.errors import MissingError, TransientError, UserError
from engine.service.embedded import EmbeddedEngine
from engine.service.remote import RemoteService
from tests.conftest import Pair, eventually, make_bucket
from tests.engines import start

T = TypeVar("T")
MiB = 1024 * 1024
OPS = ["delete", "delete-marker", "existing-objects", "metadata-sync"]


def audit_rows(pair: Pair) -> list[tuple[str, str]]:
    """(action, actor), oldest first, read straight from the database."""
    with sqlite3.connect(pair.state_dir / "mirrorline.db") as db:
        return db.execute("SELECT action, actor FROM audit ORDER BY id").fetchall()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_line_error(result: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    err = result.stderr.strip()
    assert err.startswith("mirrorline: error: ") and "\n" not in err, err
    assert fragment in err, err


def tamper(pair: Pair, key: str, data: bytes) -> None:
    pair.dst.put_object(pair.dst_bucket, key, io.BytesIO(data), len(data))


def test_every_command_works_with_connect_and_is_audited_as_api(pair: Pair) -> None:
    pair.add_policy()
    pair.put("a.txt", b"alpha")
    api = start(pair)
    remote = ("--connect", api.url)
    path = f"src/{pair.src_bucket}"

    printed: list[str] = []

    def ml(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = pair.ml(*args, *remote, check=check, env={"MIRRORLINE_TOKEN": api.token})
        printed.extend((result.stdout, result.stderr))
        return result

    eventually(lambda: pair.target_latest() == {"a.txt": b"alpha"}, 60)

    ml("replicate", "update", "--id", "p1", "--bandwidth", "50MiB")
    (listed,) = json.loads(ml("replicate", "ls", "--json").stdout)
    assert (listed["id"], listed["bandwidth"], listed["prefix"]) == ("p1", 50 * MiB, "")
    assert "p1" in ml("replicate", "ls", path).stdout
    one_line_error(
        ml("replicate", "update", "--id", "nope", "--prefix", "x/", check=False),
        1,
        "no policy with id 'nope'",
    )

    assert ml("replicate", "diff", path).stdout.strip() == "In sync."
    assert ml("replicate", "verify", path).stdout.strip() == "checked 1 objects: 0 differ"

    # Hold copies back, break the replica, and let a resync find it.
    ml("replicate", "pause", "--id", "p1")
    tamper(pair, "a.txt", b"tampered!")
    diff = ml("replicate", "diff", path, "--json", check=False)
    assert diff.returncode == 1
    assert [(d["policy"], d["status"], d["key"]) for d in json.loads(diff.stdout)] == [
        ("p1", "size-differs", "a.txt")
    ]
    verify = ml("replicate", "verify", path, "--json", check=False)
    assert verify.returncode == 1
    report = json.loads(verify.stdout)
    assert (report["checked"], report["differ"], report["policies"][0]["id"]) == (1, 1, "p1")
    assert "Resync 1 of policy p1 started" in ml("replicate", "resync", "start", path).stdout
    # Paused, its copy stays queued, so the resync stays running until cancelled.
    eventually(lambda: api.policy("p1")["backlog"]["pending"] == 1, 60)
    (status,) = json.loads(ml("replicate", "resync", "status", path, "--json").stdout)
    assert (status["id"], status["state"], status["enqueued"]) == (1, "running", 1)
    assert "Resync 1 cancelled" in ml("replicate", "resync", "cancel", path).stdout
    one_line_error(ml("replicate", "resync", "cancel", path, check=False), 1, "no resync running")
    ml("replicate", "resume", "--id", "p1")
    eventually(lambda: pair.target_latest() == {"a.txt": b"alpha"}, 60)  # its copy still ran

    # Aliases: `set` is local only (the API takes no secrets); ls and rm go through the API.
    pair.ml(
        "alias", "set", "spare", pair.target.endpoint, "spare-key", "spare-secret-77", "--no-check"
    )
    shown = {a["name"]: a for a in json.loads(ml("alias", "ls", "--json").stdout)}
    assert set(shown) == {"src", "dst", "spare"} and shown["spare"]["secret_key"] == "********"
    one_line_error(ml("alias", "rm", "dst", check=False), 1, "alias 'dst' is used by policy p1")
    one_line_error(ml("alias", "rm", "ghost", check=False), 1, "unknown alias 'ghost'")
    assert "Removed `spare`" in ml("alias", "rm", "spare").stdout
    assert "spare" not in (pair.state_dir / "aliases.json").read_text()

    extra = make_bucket(pair.dst, f"{pair.dst_bucket}-b")
    ml("replicate", "add", path, "--remote-target", f"dst/{extra}", "--id", "p2")
    assert "p2 removed" in ml("replicate", "rm", "--id", "p2").stdout

    assert audit_rows(pair)[2:] == [  # after the local alias set (x2) of the fixture
        ("add-policy", "cli"),
        ("edit-policy", "api"),
        ("pause", "api"),
        ("resync", "api"),
        ("cancel-resync", "api"),
        ("resume", "api"),
        ("alias", "cli"),
        ("alias", "api"),
        ("add-policy", "api"),
        ("remove-policy", "api"),
    ]
    secrets = [pair.source.secret_key, pair.target.secret_key, "spare-secret-77", api.token]
    for text in [*printed, *api.seen, pair.engine_log()]:
        assert not any(secret in text for secret in secrets)
    assert pair.stop_engine(api.proc) == 0


def test_a_retryable_failure_in_the_engine_stays_retryable_over_http(pair: Pair) -> None:
    pair.add_policy()
    api = start(pair)
    eventually(lambda: api.policy("p1")["scans"] >= 1, 30)
    # The engine reads aliases.json again on each call: point dst at nothing.
    s = pair.target
    down = f"http://127.0.0.1:{closed_port()}"
    pair.ml("alias", "set", "dst", down, s.access_key, s.secret_key, "--no-check")

    async def remote_diff() -> BaseException:
        service = RemoteService(api.url, api.token)
        try:
            with pytest.raises(TransientError) as caught:
                await service.diff("p1")
        finally:
            await service.close()
        return caught.value

    error = asyncio.run(remote_diff())
    assert error.retryable and error.reason.startswith("diff p1: ")
    assert down.removeprefix("http://") in error.reason
    result = pair.ml(
        "replicate",
        "diff",
        f"src/{pair.src_bucket}",
        "--connect",
        api.url,
        check=False,
        env={"MIRRORLINE_TOKEN": api.token},
    )
    one_line_error(result, 2, "diff p1: ")
    assert s.secret_key not in result.stderr
    assert pair.stop_engine(api.proc) == 0


def test_local_changes_are_audited_as_cli(pair: Pair) -> None:
    pair.add_policy()
    path = f"src/{pair.src_bucket}"
    pair.ml("replicate", "update", "--id", "p1", "--prefix", "logs/")
    (policy,) = json.loads(pair.ml("replicate", "ls", "--json").stdout)
    assert (policy["prefix"], policy["replicate"]) == ("logs/", OPS)  # the rest kept
    pair.ml("replicate", "resync", "start", path, "--page-size", "5")
    (status,) = json.loads(pair.ml("replicate", "resync", "status", path, "--json").stdout)
    assert (status["state"], status["page_size"]) == ("running", 5)
    pair.ml("replicate", "resync", "cancel", path)
    pair.ml("replicate", "update", "--id", "p1", "--state", "disable")
    pair.ml("replicate", "update", "--id", "p1", "--state", "enable")
    pair.ml("alias", "set", "spare", pair.target.endpoint, "ak", "sk", "--no-check")
    pair.ml("alias", "rm", "spare")
    assert audit_rows(pair) == [
        ("alias", "cli"),  # the fixture's src and dst
        ("alias", "cli"),
        ("add-policy", "cli"),
        ("edit-policy", "cli"),
        ("resync", "cli"),
        ("cancel-resync", "cli"),
        ("disable", "cli"),
        ("enable", "cli"),
        ("alias", "cli"),
        ("alias", "cli"),
    ]


async def test_the_embedded_engine_answers_the_same_calls(pair: Pair) -> None:
    """The console's way in: the same Service calls, run on the engine's own thread."""
    pair.add_policy()
    pair.put("a.txt", b"alpha")
    embedded = EmbeddedEngine(EngineConfig(state_dir=pair.state_dir, workers=4, scan_interval=0.5))
    await embedded.start()
    try:

        async def copied() -> bool:
            return await asyncio.to_thread(pair.target_latest) == {"a.txt": b"alpha"}

        await until(copied)
        assert await embedded.diff("p1") == []
        report = await embedded.verify("p1", sample=5, seed=1)
        assert (report.policy, report.checked, report.differences) == ("p1", 1, [])
        with pytest.raises(MissingError):
            await embedded.policy("nope")
        assert {a["name"] for a in await embedded.aliases()} == {"src", "dst"}
        with pytest.raises(UserError, match="used by policy p1"):
            await embedded.remove_alias("dst")

        await embedded.set_paused(True, "p1")
        tamper(pair, "a.txt", b"tampered!")
        (found,) = await embedded.diff("p1")
        assert (found.status, found.key) == ("size-differs", "a.txt")
        (started,) = await embedded.start_resync("p1", page_size=3)

        async def walked() -> list[dict[str, Any]]:
            found = await embedded.resyncs()  # paused: its one copy stays queued
            return found if found and found[0]["enqueued"] == 1 else []

        enqueued = await until(walked)
        assert enqueued[0]["id"] == started["id"]
        assert await embedded.cancel_resync("p1") == [started["id"]]
        actions = [(a.action, a.actor) for a in reversed(await embedded.audit())][3:]
        assert actions == [
            ("pause", "console"),
            ("resync", "console"),
            ("cancel-resync", "console"),
        ]
    finally:
        await embedded.close()


async def until(check: Callable[[], Awaitable[T]], seconds: float = 60) -> T:
    """`eventually` on the event loop: await `check()` until it is truthy; fail at the deadline."""
    deadline = time.monotonic() + seconds
    while not (value := await check()):
        assert time.monotonic() < deadline, f"condition not met within {seconds}s: {value!r}"
        await asyncio.sleep(0.2)
    return value
