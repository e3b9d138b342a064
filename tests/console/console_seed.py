"""A console over a known state database, without S3: the seed for snapshot and request tests.

Policies, pending work, failures in both states and (optionally) 10 minutes of
history, written through the real SQLite queue and read back through the same
LocalService the CLI uses. The engine is not running; the clock is frozen.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from rich.console import Group
from textual.pilot import Pilot
from textual.widgets import Static

from engine.aliases import AliasBook
from engine.demo.control import DemoAction, DemoControl, DemoState
from engine.model import NewTask, Op
from engine.policy import Policy
from engine.service.local import LocalService
from engine.state import open_state
from engine.state.sqlite import stores
from engine.state.sqlite.database import Database, open_db
from tui.app import Console

FROZEN = 1_795_000_000.0  # 2026-11-18 09:46:40 UTC
HOURS = 3600.0


LONG_ID = "archive-2026-eu-west-to-dr"  # 26 characters: wider than 80 columns allow
LONG_BUCKET = "customer-uploads-archive-eu-west-1-primary"


async def seed(state: Path, history: bool = True, long_names: bool = False) -> None:
    db = await open_db(state / "mirrorline.db")
    opened = stores(db, "mirrorline.db")
    store, queue = opened.policies, opened.queue
    photos = Policy("photos", 3, "prod", "photos", "dr", "photos", bandwidth=50 * 1024**2)
    if long_names:
        photos = Policy(LONG_ID, 3, "production-eu", LONG_BUCKET, "dr-site-eu", LONG_BUCKET)
    for policy in (
        photos,
        Policy("logs", 2, "prod", "logs", "dr-site", "logs", prefix="app/"),
        Policy("cfg", 1, "prod", "cfg", "dr", "cfg", paused=True),
    ):
        await store.add(policy)
    await queue.enqueue(
        [NewTask(photos.id, f"2026/11/IMG_{i:04}.heic", "v1", Op.PUT, 4_300_000) for i in range(40)]
        + [NewTask("logs", f"app/{i:03}.log", "v1", Op.PUT, 52_000 + i) for i in range(30)]
        + [NewTask("cfg", f"cfg/{i}.yaml", "v1", Op.PUT, 900) for i in range(3)]
    )
    claimed = await queue.claim(["logs"], 12, 60)
    for n, task in enumerate(claimed):
        if n % 3:
            error = f"PUT dr-site/logs/{task.key}: AccessDenied: Access Denied."
            await queue.fail(task, error, "permanent", "AccessDenied")
        else:
            error = f"PUT {task.key}: Connection: ConnectionRefused dr-site:9000"
            await queue.retry_later(task, error, "retryable", 0, "Connection")
    # Known times: every task five hours old, every failure parked at the frozen minute.
    await db.write("UPDATE tasks SET created_at = ?", (time.time() - 5 * HOURS,))
    await db.write(
        "UPDATE tasks SET updated_at = ?, next_at = ? WHERE state = 'retrying'",
        (FROZEN - 20, FROZEN + 40),
    )
    await db.write("UPDATE tasks SET updated_at = ? WHERE state = 'failed'", (FROZEN - 80,))
    await db.write("UPDATE attempts SET at = ?", (FROZEN - 95,))
    if history:
        await seed_history(db)
    await db.close()


async def seed_history(db: Database) -> None:
    async with db.tx() as conn:
        for i in range(60):
            at = FROZEN - 600 + i * 10
            for pid, scale in (("photos", 1.0), ("logs", 0.3)):
                body = {
                    "pending": int(400 * scale + i * 12 * scale),
                    "bytes_rate": (20 + 15 * (i % 7)) * 1024**2 * scale,
                    "lag": 2.0 + i * scale,
                }
                await conn.execute(
                    "INSERT INTO history (policy, at, body) VALUES (?, ?, ?)",
                    (pid, at, json.dumps(body)),
                )


def console_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, history: bool, long_names: bool = False
) -> Iterator[Console]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    asyncio.run(seed(tmp_path, history, long_names))
    state = asyncio.run(open_state(tmp_path / "mirrorline.db"))
    service = LocalService(state, AliasBook(tmp_path / "aliases.json"), "console")
    yield Console(service, refresh=3600, where="state: /srv/mirrorline", clock=lambda: FROZEN)
    asyncio.run(state.close())
    os.environ.pop("TZ", None)
    time.tzset()


async def settle(pilot: Pilot[Any]) -> None:
    """Every worker done (the start, a poll, a request), the messages they posted, then the
    workers those started (a poll's answer is painted by a worker of its own)."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.2)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.1)


async def until_shown(pilot: Pilot[Any], check: Callable[[], Any], seconds: float = 30.0) -> Any:
    """Let the console run until `check()` is truthy (what a request brings is painted by
    workers that come and go); fail at the deadline with what was last seen."""
    deadline = time.monotonic() + seconds
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"not shown within {seconds}s; last: {result!r}")
        await pilot.pause(0.1)
    return result


def shown_story(app: Console) -> str:
    """The explain story's lines as the pane holds them: each one's indent, then its text."""
    story = app.screen.query_one("#story", Static).content
    assert isinstance(story, Group), story
    return "\n".join(" " * p.left + p.renderable.plain for p in story.renderables)


@dataclass
class StillDemo(LocalService, DemoControl):
    """The seeded service as a demo's console sees it, with a demo that holds one state.

    For the screens only (snapshots, which key reaches the demo): the fault keys'
    effect on a real link is proven against a real EmbeddedDemo (tests/e2e)."""

    shown: DemoState = field(
        default_factory=lambda: DemoState("cut", FROZEN - 42, 20.0, True, 1234, 1200, 0)
    )
    acted: list[DemoAction] = field(default_factory=list)

    async def demo_state(self) -> DemoState:
        return self.shown

    async def demo_act(self, action: DemoAction) -> DemoState:
        self.acted.append(action)
        return self.shown


def demo_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    """The seeded queue on a demo's console: the demo bar shows, the demo keys work."""
    for app in console_over(tmp_path, monkeypatch, history=False):
        service = app.source
        assert isinstance(service, LocalService)
        demo = StillDemo(service.state, service.book, "console")
        yield Console(demo, refresh=3600, where="demo on /tmp/demo", clock=lambda: FROZEN)


def empty_console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    """A state dir with nothing in it: what a newcomer's first `mirrorline tui` shows."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    state = asyncio.run(open_state(tmp_path / "mirrorline.db"))
    service = LocalService(state, AliasBook(tmp_path / "aliases.json"), "console")
    yield Console(service, refresh=3600, where="state: /srv/mirrorline", clock=lambda: FROZEN)
    asyncio.run(state.close())
    os.environ.pop("TZ", None)
    time.tzset()
