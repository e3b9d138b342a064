"""The console's key map: one meaning per key on each screen, the demo's keys only on a
demo, and the endpoint form's checks. Fast: the seeded state database, no S3 server
(the keys against a real demo are in tests/e2e/test_demo_console.py, the endpoint form
against real servers in tests/test_console_first_run.py)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console as RichConsole
from textual.actions import parse as parse_action
from textual.binding import Binding
from textual.message import Message
from textual.notifications import Notify
from textual.pilot import Pilot
from textual.widgets import Label, Static

from engine.demo.control import DemoAction
from engine.service.remote import RemoteService
from tests.console.console_seed import StillDemo, console_over, demo_over, settle
from tests.console.test_console import until
from tui.actions import ACTIONS, DEMO_KEYS
from tui.app import NO_SECRETS, Console
from tui.messages import DemoRequested
from tui.screens import ConsoleScreen
from tui.screens.alias_form import AliasForm
from tui.screens.causes import CausesScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.failures import FailuresScreen
from tui.screens.help import HelpScreen


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    yield from console_over(tmp_path, monkeypatch, history=False)


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    yield from demo_over(tmp_path, monkeypatch)


def keys_of(bindings: list[Binding]) -> list[str]:
    return [key for b in bindings for key in b.key.split(",")]


@pytest.mark.parametrize("screen", [DashboardScreen, CausesScreen, FailuresScreen])
def test_no_key_means_two_things_on_one_screen(screen: type[ConsoleScreen[object]]) -> None:
    keys = keys_of([*Console.BINDINGS, *screen.BINDINGS])  # type: ignore[list-item]
    assert sorted(k for k in set(keys) if keys.count(k) > 1) == []


def test_the_demo_keys_are_the_demo_actions_and_leave_the_console_keys_alone() -> None:
    called = [parse_action(ACTIONS[name].call) for name in DEMO_KEYS]
    assert {name for _, name, _ in called} == {"demo"}
    assert {DemoAction(args[0]) for _, _, args in called} == set(DemoAction)
    console_keys = {k for a in ACTIONS.values() if not a.demo for k in a.keys.split(",")}
    assert console_keys.isdisjoint(k for n in DEMO_KEYS for k in ACTIONS[n].keys.split(","))


async def test_each_demo_key_reaches_the_demo_and_the_lower_case_keeps_its_meaning(
    demo: Console,
) -> None:
    source = demo.source
    assert isinstance(source, StillDemo)
    async with demo.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        await pilot.press("c", "l")  # copy (no failure selected: nothing), the audit log
        await settle(pilot)
        assert source.acted == []
        await pilot.press("escape")  # the audit log closes
        await pilot.press("C", "L", "B", "X", "H", "plus", "minus", "E")
        await settle(pilot)
        assert source.acted == [
            DemoAction.CUT,
            DemoAction.LATENCY,
            DemoAction.THROTTLE,
            DemoAction.RESETS,
            DemoAction.HEAL,
            DemoAction.FASTER,
            DemoAction.SLOWER,
            DemoAction.EVENTS,
        ]
        assert demo.view.demo == source.shown  # fetched with the snapshot, for the bar


async def test_without_a_demo_its_keys_do_nothing(seeded: Console) -> None:
    seen: list[Message] = []
    async with seeded.run_test(size=(120, 36), message_hook=seen.append) as pilot:
        await settle(pilot)
        await pilot.press("C", "H", "E", "plus")
        await settle(pilot)
        assert not [m for m in seen if isinstance(m, DemoRequested)]
        assert seeded.view.demo is None
        assert not seeded.screen.query("#demo")  # and no demo bar


def help_text(app: Console) -> str:
    screen = app.screen
    assert isinstance(screen, HelpScreen)
    out = RichConsole(file=io.StringIO(), width=200)
    out.print(screen.query_one("#keys", Static).content)
    return out.file.getvalue()  # type: ignore[attr-defined]


@pytest.fixture(params=[True, False], ids=["demo", "no-demo"])
def either(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Console]:
    if request.param:
        yield from demo_over(tmp_path, monkeypatch)
    else:
        yield from console_over(tmp_path, monkeypatch, history=False)


async def test_help_lists_the_demo_keys_on_a_demo_only(either: Console) -> None:
    on_demo = either.demo is not None
    async with either.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        text = help_text(either)
        assert "Add an S3 endpoint" in text
        for name in DEMO_KEYS:
            assert (ACTIONS[name].description in text) is on_demo, name


def error_of(app: Console, field: str) -> str:
    label = app.screen.query_one(f"#{field}-error", Label)
    return str(label.content) if label.display else ""


async def test_the_endpoint_form_checks_as_you_type_and_saves_only_what_answers(
    seeded: Console,
) -> None:
    async with seeded.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        await pilot.press("A")
        await pilot.pause(0.1)
        assert isinstance(seeded.screen, AliasForm)
        await pilot.press(*"bad name")
        assert "invalid alias name" in error_of(seeded, "name")
        await pilot.press(*["backspace"] * 5, *"_ok")  # "bad_ok"
        assert error_of(seeded, "name") == ""
        await pilot.press("tab", *"ftp://store")
        assert "invalid endpoint URL" in error_of(seeded, "url")
        await pilot.press(*["backspace"] * 11, *"http://127.0.0.1:9")  # nothing listens on 9
        assert error_of(seeded, "url") == ""
        await pilot.press("tab", *"AKIA1", "tab", *"sekrit-value-42")
        assert "sekrit-value-42" not in seeded.export_screenshot()  # masked as it is typed
        await pilot.press("ctrl+s")
        reason = await wait_for_form_error(pilot, seeded)
        assert "does not answer" in reason, reason
        assert isinstance(seeded.screen, AliasForm)  # open: fix the URL and save again
        assert await seeded.source.aliases() == []  # nothing saved


async def wait_for_form_error(pilot: Pilot[None], app: Console) -> str:
    def shown() -> str:
        reason = error_of(app, "form")
        return "" if reason in ("", "checking the endpoint…") else reason

    return str(await until(pilot, shown, timeout=30))


async def test_a_remote_engine_says_why_it_takes_no_endpoint() -> None:
    seen: list[Message] = []
    app = Console(RemoteService("http://127.0.0.1:9", "token"), refresh=3600)
    async with app.run_test(size=(120, 36), message_hook=seen.append) as pilot:
        await settle(pilot)
        await pilot.press("A")
        await settle(pilot)
        assert not isinstance(app.screen, AliasForm)
        said = [m.notification.message for m in seen if isinstance(m, Notify)]
        assert NO_SECRETS in said
