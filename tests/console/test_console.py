"""The console, headless (Textual's run_test and Pilot), driving a real engine embedded in the
test process and replicating between the two SeaweedFS servers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Label
from textual.widgets.data_table import CellDoesNotExist

from engine.config import EngineConfig
from engine.service.embedded import EmbeddedEngine
from engine.telemetry.snapshot import Snapshot
from tests.conftest import Pair, make_bucket
from tests.console.console_seed import shown_story
from tui.app import Console
from tui.screens.causes import CausesScreen
from tui.screens.confirm import Confirm
from tui.screens.explain import ExplainScreen
from tui.screens.failures import FailuresScreen
from tui.screens.policy_form import PolicyForm
from tui.widgets.table import LiveTable


@asynccontextmanager
async def console(pair: Pair, **options: Any) -> AsyncIterator[tuple[Console, Pilot[None]]]:
    embedded = EmbeddedEngine(EngineConfig(state_dir=pair.state_dir, workers=8, scan_interval=0.5))
    app = Console(embedded, starting=embedded.start, refresh=0.3, **options)
    async with app.run_test(size=(120, 36)) as pilot:
        try:
            yield app, pilot
        finally:
            await embedded.close()


async def until(pilot: Pilot[None], check: Callable[[], Any], timeout: float = 30.0) -> Any:  # noqa: ASYNC109
    """Let the app run until `check()` is truthy; fail with its last value at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (AssertionError, LookupError, CellDoesNotExist) as exc:
            last = exc
        else:
            if last:
                return last
        await pilot.pause(0.1)
    raise AssertionError(
        f"condition not met within {timeout}s; last: {last!r}; screen {pilot.app.screen!r}; "
        f"view {pilot.app.view!r}"  # type: ignore[attr-defined]
    )


async def off_loop(work: Callable[[], Any]) -> Any:
    """Blocking S3 and CLI calls from the test: in a thread, so the app keeps running."""
    return await asyncio.to_thread(work)


def cell(app: Console, table: str, row: str, column: str) -> str:
    return app.screen.query_one(f"#{table}", LiveTable).get_cell(row, column).plain


def snap(app: Console) -> Snapshot:
    assert app.view.snapshot is not None
    return app.view.snapshot


def park_failures(pair: Pair, count: int) -> None:
    """`count` tasks failed for good: queued while paused, then the target bucket vanishes."""
    pair.add_policy()
    pair.ml("replicate", "pause", "--id", "p1")
    pair.seed("fail/", count, 100)


async def failing(app: Console, pilot: Pilot[None], pair: Pair, count: int) -> None:
    await until(pilot, lambda: snap(app).policy("p1").backlog.pending == count)
    await off_loop(lambda: pair.dst.remove_bucket(pair.dst_bucket))
    await off_loop(lambda: pair.ml("replicate", "resume", "--id", "p1"))
    await until(pilot, lambda: snap(app).policy("p1").backlog.failed == count)


async def test_dashboard_shows_the_engines_numbers(pair: Pair) -> None:
    pair.add_policy("--bandwidth", "20KiB")
    pair.seed("a/", 30, 2048)
    async with console(pair) as (app, pilot):
        await until(pilot, lambda: snap(app).policy("p1").backlog.replicated >= 3)
        app.action_freeze()  # hold the screen still while comparing it with the engine
        await pilot.pause(0.3)
        shown = snap(app).policy("p1")
        b = shown.backlog
        assert cell(app, "policies", "p1", "pending") == f"{b.pending:,}"
        assert cell(app, "policies", "p1", "in_flight") == f"{b.in_flight:,}"
        assert cell(app, "policies", "p1", "failed") == "0"
        # STATE says why dispatch is held when it is: under a 20 KiB/s limit, mostly so.
        assert shown.hold in ("", "throttled")
        assert cell(app, "policies", "p1", "state") == (shown.hold or "active")
        assert cell(app, "policies", "p1", "source") == f"src/{pair.src_bucket}"
        assert cell(app, "policies", "p1", "limit") == "20.0 KiB/s"
        transfers = app.screen.query_one("#transfers", LiveTable)
        # The pane shows the snapshot's transfers; the queue's in-flight count also holds
        # claimed tasks not started yet and finished ones whose completion is being batched.
        assert transfers.row_count == len(snap(app).transfers) <= b.in_flight
        # The engine's own count, read independently through the CLI's status.
        report = await off_loop(lambda: pair.status())
        assert report["replicated"] + report["pending"] + report["in_flight"] <= 30
        assert "running" in str(app.screen.query_one("#status").render())
        app.action_freeze()


async def test_p_pauses_the_policy_and_dispatch_stops(pair: Pair) -> None:
    pair.add_policy()
    async with console(pair) as (app, pilot):
        await until(pilot, lambda: cell(app, "policies", "p1", "state") == "active")
        await pilot.press("p")
        await until(pilot, lambda: snap(app).policy("p1").state == "paused")
        assert cell(app, "policies", "p1", "state") in ("paused", "active")
        await off_loop(lambda: pair.seed("held/", 5, 10))
        await until(pilot, lambda: snap(app).policy("p1").backlog.pending == 5)
        scans = snap(app).policy("p1").scans
        await until(pilot, lambda: snap(app).policy("p1").scans >= scans + 2)
        # Two more scans later, nothing was dispatched: all five wait, none reached the target.
        assert snap(app).policy("p1").backlog.pending == 5
        assert snap(app).policy("p1").backlog.in_flight == 0
        assert await off_loop(pair.target_latest) == {}
        assert cell(app, "policies", "p1", "state") == "paused"
        await pilot.press("p")
        await until(pilot, lambda: len(pair.target_latest()) == 5)
        audit = await app.source.audit()
        assert [(a.actor, a.action) for a in reversed(audit)][-2:] == [
            ("console", "pause"),
            ("console", "resume"),
        ]


async def test_r_and_R_retry_and_tasks_leave_the_failed_state(pair: Pair) -> None:
    park_failures(pair, 6)
    async with console(pair) as (app, pilot):
        await failing(app, pilot, pair, 6)
        await off_loop(lambda: make_bucket(pair.dst, pair.dst_bucket))
        await pilot.press("F")
        assert isinstance(app.screen, CausesScreen)
        causes = app.screen.query_one("#causes", LiveTable)
        await until(pilot, lambda: causes.row_count == 1)
        await pilot.press("enter")
        assert isinstance(app.screen, FailuresScreen)
        table = app.screen.query_one("#failures", LiveTable)
        await until(pilot, lambda: table.row_count == 6)
        first = table.selected_key
        await pilot.press("r")
        await until(pilot, lambda: snap(app).policy("p1").backlog.failed == 5)
        await until(pilot, lambda: len(pair.target_latest()) == 1)
        assert first not in {k.value for k in table.rows}
        await pilot.press("R")
        assert isinstance(app.screen, Confirm)
        await pilot.press("y")
        await until(pilot, lambda: snap(app).policy("p1").backlog.failed == 0)
        await until(pilot, lambda: len(pair.target_latest()) == 6)
        assert snap(app).policy("p1").backlog.retrying == 0


async def test_drill_down_from_a_cause_to_a_task_to_its_story(
    pair: Pair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Enter on a cause, its tasks (filtered, exported), Enter on one: its whole story, the
    engine's explanation of that key; r there queues it again, c copies the text."""
    monkeypatch.chdir(tmp_path)
    park_failures(pair, 12)
    async with console(pair) as (app, pilot):
        await failing(app, pilot, pair, 12)
        await pilot.press("F")
        causes = app.screen.query_one("#causes", LiveTable)
        await until(pilot, lambda: causes.row_count == 1)
        row = causes.selected_key
        assert row is not None
        line = [causes.get_cell(row, c).plain for c in ("code", "op", "policy", "count")]
        assert line == ["NoSuchBucket", "PUT", "p1", "12 tasks"]
        await pilot.press("enter")
        table = app.screen.query_one("#failures", LiveTable)
        await until(pilot, lambda: table.row_count == 12)
        await pilot.press("slash")
        assert app.screen.query_one("#filter", Input).has_focus
        await pilot.press(*"fail/000", "enter")
        await until(pilot, lambda: table.row_count == 10)  # fail/0000 .. fail/0009
        keys = {table.get_cell(k, "key").plain for k in table.rows}
        assert keys == {f"fail/{i:04}" for i in range(10)}
        await pilot.press("x")
        exported = await until(pilot, lambda: sorted(tmp_path.glob("mirrorline-failures-*.json")))
        rows = json.loads(exported[0].read_text())
        assert sorted(r["key"] for r in rows) == sorted(keys)
        assert all(r["state"] == "failed" and "NoSuchBucket" in r["last_error"] for r in rows)
        csv_path = exported[0].with_suffix(".csv")
        assert len(csv_path.read_text().strip().splitlines()) == 11  # header + 10
        assert {exported[0].stat().st_mode & 0o777, csv_path.stat().st_mode & 0o777} == {0o600}
        await pilot.press("enter")
        story = app.screen
        assert isinstance(story, ExplainScreen)
        task = story.task_shown
        assert task is not None and task.key in keys
        await until(pilot, lambda: story.explanation is not None)
        shown = story.explanation
        assert shown is not None
        source = f"src/{pair.src_bucket}"
        again = await app.source.explain(source, task.key)  # nothing moved meanwhile
        assert {**shown.to_dict(), "at": 0} == {**again.to_dict(), "at": 0}
        assert shown_story(app) == "\n".join(shown.lines())
        assert shown.verdict == "failed" and "NoSuchBucket" in shown_story(app)
        # The evidence, checked against the servers themselves.
        versions = await off_loop(
            lambda: [
                v.version_id
                for v in pair.src.list_objects(pair.src_bucket, task.key, include_version=True)
            ]
        )
        assert [v.version_id for v in shown.source_versions] == versions
        assert [t.id for t in shown.tasks] == [task.id]
        await pilot.press("c")
        assert app.clipboard == "\n".join(shown.lines()) + "\n"
        await off_loop(lambda: make_bucket(pair.dst, pair.dst_bucket))
        await pilot.press("r")
        await until(pilot, lambda: story.explanation and story.explanation.verdict == "in sync")
        assert task.key in await off_loop(pair.target_latest)
        await pilot.press("escape")
        await pilot.press("escape")  # clears the filter
        await until(pilot, lambda: table.row_count == 11)
        await pilot.press("space", "space")
        assert len(app.screen.marked) == 2  # type: ignore[attr-defined]
        await pilot.press("d")
        assert not isinstance(app.screen, FailuresScreen | CausesScreen)


async def type_into(pilot: Pilot[None], field: str, text: str) -> None:
    form = pilot.app.screen
    box = form.query_one(f"#{field}", Input)
    box.value = ""
    box.focus()
    await pilot.press(*text) if text else None
    await pilot.pause(0.05)


def error_of(app: Console, field: str) -> str:
    return str(app.screen.query_one(f"#{field}-error", Label).render())


async def test_add_policy_form_rejects_each_bad_field_then_accepts_and_replicates(
    pair: Pair,
) -> None:
    other = f"{pair.dst_bucket}-form"
    make_bucket(pair.dst, other)
    pair.put("formed.txt", b"via the form")
    async with console(pair) as (app, pilot):
        await until(pilot, lambda: app.view.snapshot is not None)
        await pilot.press("a")
        assert isinstance(app.screen, PolicyForm)
        for field, bad, message in [
            ("source", "nobucket", "expected ALIAS/BUCKET"),
            ("target", "dst/Bad_Bucket", "invalid bucket name"),
            ("tags", "novalue", "expected key=value"),
            ("bandwidth", "fast", "bandwidth"),
            ("id", "has space", "id"),
        ]:
            await type_into(pilot, field, bad)
            assert message in error_of(app, field), (field, error_of(app, field))
            assert app.screen.query_one(f"#{field}", Input).has_class("-invalid")
        await pilot.press("ctrl+s")
        assert "fix the fields" in str(app.screen.query_one("#form-error", Label).render())
        await type_into(pilot, "source", f"ghost/{pair.src_bucket}")
        await type_into(pilot, "target", f"dst/{other}")
        for field in ("tags", "bandwidth", "id"):
            await type_into(pilot, field, "")
        await pilot.press("ctrl+s")
        await until(
            pilot,
            lambda: "unknown alias" in str(app.screen.query_one("#form-error", Label).render()),
        )
        assert [p.id for p in await app.source.policies()] == []
        await type_into(pilot, "source", f"src/{pair.src_bucket}")
        await type_into(pilot, "id", "formed")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: not isinstance(app.screen, PolicyForm))
        await until(pilot, lambda: cell(app, "policies", "formed", "target") == f"dst/{other}")
        await until(pilot, lambda: "formed.txt" in pair_objects(pair, other))


def pair_objects(pair: Pair, bucket: str) -> set[str]:
    return {o.object_name for o in pair.dst.list_objects(bucket, recursive=True)}


async def test_read_only_refuses_actions(pair: Pair) -> None:
    pair.add_policy()
    async with console(pair, read_only=True) as (app, pilot):
        await until(pilot, lambda: cell(app, "policies", "p1", "state") == "active")
        for key in ("p", "P", "a", "R"):
            await pilot.press(key)
        await pilot.pause(0.5)
        assert snap(app).policy("p1").state == "enabled"
        assert not snap(app).engine.paused
        assert not isinstance(app.screen, PolicyForm | Confirm)
        # only the CLI's: the fixture's two `alias set` and the add
        assert [(a.action, a.actor) for a in await app.source.audit()] == [
            ("add-policy", "cli"),
            ("alias", "cli"),
            ("alias", "cli"),
        ]
