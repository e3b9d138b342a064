"""Text from a store or a client never drives the operator's terminal (issue 11): a key with
an escape sequence and Rich markup in it, and a server's error text with an OSC title, show
escaped and literal in every widget that quotes them. Fast: the seeded state database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.model import NewTask, Op
from engine.printable import printable
from engine.service.local import LocalService
from tests.console.console_seed import console_over, settle, shown_story, until_shown
from tui.app import Console
from tui.screens.causes import CausesScreen
from tui.screens.explain import ExplainScreen
from tui.screens.failures import FailuresScreen
from tui.widgets.table import LiveTable

EVIL_KEY = "evil/\x1b[2J[bold]boom[/bold]"
EVIL_ERROR = "PUT evil: \x1b]0;pwned\x07 [red]NoSuchBucket[/red]"


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    yield from console_over(tmp_path, monkeypatch, history=False)


async def park_evil(service: LocalService) -> None:
    queue = service.state.queue
    await queue.enqueue([NewTask("cfg", EVIL_KEY, "v1", Op.PUT, 10)])
    await service.set_paused(False, "cfg")
    (task,) = [t for t in await queue.claim(["cfg"], 10, 60) if t.key == EVIL_KEY]
    await queue.fail(task, EVIL_ERROR, "permanent", "Evil[bold]Code")


def raw_controls(text: str) -> set[str]:
    return {ch for ch in text if ch in "\x1b\x07"}


async def test_a_key_and_an_error_with_escapes_and_markup_show_escaped(seeded: Console) -> None:
    assert isinstance(seeded.source, LocalService)
    await park_evil(seeded.source)
    async with seeded.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        await pilot.press("F")
        await settle(pilot)
        causes = seeded.screen
        assert isinstance(causes, CausesScreen)
        table = causes.query_one("#causes", LiveTable)
        (row,) = [k.value for k in table.rows if k.value and k.value.startswith("cfg")]
        assert table.get_cell(row, "code").plain == "Evil[bold]Code"
        assert table.get_cell(row, "example").plain == printable(EVIL_KEY)
        assert table.get_cell(row, "error").plain == printable(EVIL_ERROR)
        table.move_cursor(row=table.get_row_index(row))
        await pilot.press("enter")
        await settle(pilot)
        tasks = seeded.screen
        assert isinstance(tasks, FailuresScreen)
        shown = tasks.query_one("#failures", LiveTable)
        (task_row,) = list(shown.rows)
        assert shown.get_cell(task_row, "key").plain == "evil/\\x1b[2J[bold]boom[/bold]"
        await pilot.press("c")  # the toast quotes the key
        await pilot.pause(0.2)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(seeded.screen, ExplainScreen)
        # No alias is set, so the engine cannot list the stores: the screen says so and
        # still tells the failure it was opened from, escaped like everything else.
        story = await until_shown(pilot, lambda: "pwned" in (told := shown_story(seeded)) and told)
        assert story.startswith("cannot explain: unknown alias 'prod'")
        assert "[bold]boom[/bold]" in story  # markup shown as itself, not applied
        assert "\\x1b]0;pwned\\x07" in story
        screen_text = seeded.export_screenshot()
        assert "\\x1b[2J" in screen_text and "\\x1b]0;pwned\\x07" in screen_text
        assert raw_controls(screen_text) == set()
        toasts = [n.message for n in seeded._notifications]
        assert any("\\x1b[2J[bold]boom" in m for m in toasts), toasts
        assert all(not raw_controls(m) for m in toasts)
