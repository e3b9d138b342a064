"""Requests flow up: keys on a screen or a dialog become messages the app runs against the
service. Fast: the seeded state database through LocalService, no S3 server and no engine
(end-to-end proof with a running engine is tests/test_console.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.message import Message
from textual.pilot import Pilot
from textual.widgets import Input, Label

from engine.errors import MirrorlineError
from engine.model import TaskState
from tests.console.console_seed import console_over, settle, shown_story
from tui.app import Console
from tui.messages import PauseRequested
from tui.screens.causes import CausesScreen
from tui.screens.explain import ExplainScreen, KeyPrompt
from tui.screens.failures import FailuresScreen

PARKED = [TaskState.FAILED, TaskState.RETRYING]


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    yield from console_over(tmp_path, monkeypatch, history=False)


async def parked_ids(app: Console) -> set[int]:
    return {t.id for t in (await app.source.tasks(PARKED, limit=100)).tasks}


async def test_p_posts_a_pause_request_that_the_app_runs(seeded: Console) -> None:
    seen: list[Message] = []
    async with seeded.run_test(size=(120, 36), message_hook=seen.append) as pilot:
        await settle(pilot)
        await pilot.press("p")  # the cursor is on the first policy, photos
        await settle(pilot)
        # One message, seen by each node it bubbled through (the screen, then the app).
        requests = {id(m): m for m in seen if isinstance(m, PauseRequested)}.values()
        assert [(r.policy, r.paused) for r in requests] == [("photos", True)]
        policies = {p.id: p for p in await seeded.source.policies()}
        assert policies["photos"].paused and not policies["logs"].paused
        assert seeded.view.snapshot is not None
        assert seeded.view.snapshot.policy("photos").paused  # polled again after the change


async def open_first_cause(pilot: Pilot[None]) -> FailuresScreen:
    """F, then Enter on the largest cause: its tasks."""
    await pilot.press("F")
    await settle(pilot)
    assert isinstance(pilot.app.screen, CausesScreen)
    await pilot.press("enter")
    await settle(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, FailuresScreen)
    return screen


async def test_r_in_the_story_retries_the_task_and_asks_again(seeded: Console) -> None:
    async with seeded.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        before = await parked_ids(seeded)
        await open_first_cause(pilot)
        await pilot.press("enter")
        story = seeded.screen
        assert isinstance(story, ExplainScreen)
        task = story.task_shown
        assert task is not None
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
        assert seeded.screen is story  # the story stays, told again
        assert await parked_ids(seeded) == before - {task.id}


async def test_marks_stay_when_the_engine_refuses_and_go_when_it_accepts(
    seeded: Console,
) -> None:
    async with seeded.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        screen = await open_first_cause(pilot)
        await pilot.press("space", "space")
        marked = set(screen.marked)
        assert len(marked) == 2
        gone = min(marked)
        await seeded.source.retry([gone])  # behind the console's back: no longer failed
        await pilot.press("r")
        await settle(pilot)
        assert screen.marked == marked  # refused: fix and press r again
        assert marked - {gone} <= await parked_ids(seeded)  # and nothing was queued
        screen.marked.discard(gone)
        await pilot.press("r")
        await settle(pilot)
        assert screen.marked == set()
        assert not marked & await parked_ids(seeded)


async def test_w_asks_for_any_key_by_name_and_opens_its_story(seeded: Console) -> None:
    async with seeded.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        await pilot.press("w")
        prompt = seeded.screen
        assert isinstance(prompt, KeyPrompt)
        assert prompt.query_one("#where", Input).value == "prod/photos/"  # the selected policy's
        await pilot.press("enter")  # no key yet: said, and the prompt stays
        assert seeded.screen is prompt
        assert "ALIAS/BUCKET/KEY" in str(prompt.query_one("#where-error", Label).render())
        await pilot.press(*"2026/11/IMG_0001.heic", "enter")
        story = seeded.screen
        assert isinstance(story, ExplainScreen)
        assert (story.source_name, story.key) == ("prod/photos", "2026/11/IMG_0001.heic")
        await settle(pilot)
        # No alias `prod` in this state dir: the engine's refusal, in its words, in a line.
        with pytest.raises(MirrorlineError) as refused:
            await seeded.source.explain("prod/photos", "2026/11/IMG_0001.heic")
        assert shown_story(seeded) == f"cannot explain: {refused.value.reason}"
