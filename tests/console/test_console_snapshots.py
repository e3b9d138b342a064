"""Snapshot tests of the console's screens, at 80x24 and 120x36, with the clock frozen.

The data is a real state database seeded with a known queue (policies, pending
work, failures in both states, 10 minutes of history) and read through the
same LocalService the CLI uses; the engine is not running, which the header
says. Update after a deliberate change with `pytest --snapshot-update` and look
at the SVGs in tests/__snapshots__/ before committing them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from tests.console.console_seed import console_over, settle
from tui.app import Console


@pytest.fixture(autouse=True)
def steady_cursor(monkeypatch: pytest.MonkeyPatch) -> None:
    """An Input's cursor blinks on a timer: held on, a snapshot cannot catch either phase."""
    monkeypatch.setattr(Input, "_toggle_cursor", lambda _self: None)


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    yield from console_over(tmp_path, monkeypatch, history=True)


@pytest.fixture
def no_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    """The same queue on an engine that has not recorded a minute of history yet."""
    yield from console_over(tmp_path, monkeypatch, history=False)


@pytest.mark.parametrize("size", [(120, 36), (80, 24)])
def test_dashboard(seeded: Console, snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(seeded, terminal_size=size, run_before=settle)


def test_trends_without_history_draw_nothing(no_history: Console, snap_compare: Any) -> None:
    """No data yet is blank panels, not a baseline and not bars at full height."""
    assert snap_compare(no_history, terminal_size=(120, 36), run_before=settle)


def test_failures_view(seeded: Console, snap_compare: Any) -> None:
    async def open_failures(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        await pilot.press("F")
        await settle(pilot)
        await pilot.press("down", "space")
        await settle(pilot)

    assert snap_compare(seeded, terminal_size=(120, 36), run_before=open_failures)


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
