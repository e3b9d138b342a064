"""Snapshot tests of the console's screens, at 80x24 and 120x36, with the clock frozen.

The data is a real state database seeded with a known queue (policies, pending
work, failures in both states, 10 minutes of history) and read through the
same LocalService the CLI uses; the engine is not running, which the header
says. Update after a deliberate change with `pytest --snapshot-update` and look
at the SVGs in tests/__snapshots__/ before committing them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from tests.console.console_seed import FROZEN, console_over, demo_over, empty_console, settle
from tui.app import Console


@pytest.fixture(autouse=True)
def steady_cursor(monkeypatch: pytest.MonkeyPatch) -> None:
    """An Input's cursor blinks on a timer: held on, a snapshot cannot catch either phase."""
    monkeypatch.setattr(Input, "_toggle_cursor", lambda _self: None)


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    yield from console_over(tmp_path, monkeypatch, history=True)


@pytest.fixture
def long_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    """The same queue with a 26-character policy id and 42-character bucket names."""
    yield from console_over(tmp_path, monkeypatch, history=True, long_names=True)


@pytest.fixture
def no_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    """The same queue on an engine that has not recorded a minute of history yet."""
    yield from console_over(tmp_path, monkeypatch, history=False)


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    """The same queue on a demo's console, its link cut 42 s ago, events on."""
    yield from demo_over(tmp_path, monkeypatch)


@pytest.fixture
def empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    yield from empty_console(tmp_path, monkeypatch)


@pytest.mark.parametrize("size", [(120, 36), (80, 24)])
def test_dashboard(seeded: Console, snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(seeded, terminal_size=size, run_before=settle)


def test_dashboard_keeps_the_numbers_with_long_names_at_80x24(
    long_names: Console, snap_compare: Any
) -> None:
    """Over SSH at 80x24: ID (cut, with an ellipsis), STATE, PENDING, FAILED and LAG stay."""
    assert snap_compare(long_names, terminal_size=(80, 24), run_before=settle)


def test_trends_without_history_draw_nothing(no_history: Console, snap_compare: Any) -> None:
    """No data yet is blank panels, not a baseline and not bars at full height."""
    assert snap_compare(no_history, terminal_size=(120, 36), run_before=settle)


def test_failures_view(seeded: Console, snap_compare: Any) -> None:
    async def open_failures(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("F")
        await settle(pilot)
        await pilot.press("enter")  # the largest cause: its tasks
        await settle(pilot)
        await pilot.press("down", "space")
        await settle(pilot)

    assert snap_compare(seeded, terminal_size=(120, 36), run_before=open_failures)


def test_failures_by_cause(seeded: Console, snap_compare: Any) -> None:
    async def open_causes(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("F")
        await settle(pilot)

    assert snap_compare(seeded, terminal_size=(120, 36), run_before=open_causes)


def test_add_policy_form_with_errors(seeded: Console, snap_compare: Any) -> None:
    async def bad_form(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("a", *"prod", "tab", *"dr/Bad_Name", "tab", "tab", *"novalue")
        await pilot.pause(0.2)

    assert snap_compare(seeded, terminal_size=(120, 36), run_before=bad_form)


def test_help(seeded: Console, snap_compare: Any) -> None:
    async def open_help(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.2)

    assert snap_compare(seeded, terminal_size=(120, 36), run_before=open_help)


@pytest.mark.parametrize("size", [(120, 36), (80, 24)])
def test_demo_bar(demo: Console, snap_compare: Any, size: tuple[int, int]) -> None:
    """Under the header: the fault and since when, the rate, events on, and the demo's keys;
    at 80 columns the counts give way and the fault stays."""
    assert snap_compare(demo, terminal_size=size, run_before=settle)


def test_first_run_hint(empty: Console, snap_compare: Any) -> None:
    """Nothing configured: the empty policies table says what to do first."""
    assert snap_compare(empty, terminal_size=(120, 36), run_before=settle)


def test_starting_says_what_starts(tmp_path: Path, snap_compare: Any) -> None:
    """While the engine (here: one that never comes up) starts, the screen says so."""

    async def never() -> None:
        await asyncio.Event().wait()

    for app in empty_console(tmp_path, pytest.MonkeyPatch()):
        starting = Console(
            app.source,
            refresh=3600,
            starting=never,
            starting_says="starting the demo: two SeaweedFS stores and the engine",
            where="demo on /tmp/demo",
            clock=lambda: FROZEN,
        )

        async def started(pilot: Pilot[Any]) -> None:
            while not pilot.app.view.starting:  # type: ignore[attr-defined]
                await pilot.pause(0.05)
            await pilot.pause(0.2)

        assert snap_compare(starting, terminal_size=(120, 36), run_before=started)
