"""The console app: one refresh loop, one source, screens that render snapshots.

A timer asks the source for a snapshot (and the page the screen on top shows)
every `--refresh` seconds in an exclusive worker, so a slow remote engine cannot
stack requests up; the answer comes back as a message and goes down to the
screen on top. Screens ask for changes with request messages (tui.messages);
keys never wait for a refresh: requests run as workers and report with a toast.
Freezing the display stops rendering, not the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from textual import on, work
from textual.actions import parse as parse_action
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen

from engine.demo.control import DemoAction, DemoControl
from engine.errors import MirrorlineError
from engine.printable import printable
from engine.service import AliasWriter, Service
from tui.actions import ACTIONS, DEMO_KEYS, allowed, bindings
from tui.messages import (
    DemoRequested,
    EngineRequest,
    PauseRequested,
    RefreshRequested,
    SnapshotReceived,
    SourceFailed,
)
from tui.screens import ConsoleScreen
from tui.screens.alias_form import AliasForm
from tui.screens.audit import AuditScreen
from tui.screens.causes import CausesScreen
from tui.screens.dashboard import DashboardScreen
from tui.screens.explain import ExplainScreen, KeyPrompt
from tui.screens.help import HelpScreen
from tui.screens.policy_form import PolicyForm
from tui.view import View

HISTORY_SECONDS = 15 * 60  # sparklines reach back this far (from the engine's history)
log = logging.getLogger("mirrorline.console")
NO_SECRETS = (
    "this engine is reached over its API, which takes no secrets: add the endpoint on its "
    "machine with `mirrorline alias set NAME URL` (it asks for the keys)"
)


def failed_to_start(exc: Exception) -> str:
    """The reason in one line. Textual's own report of a crash lists each frame's locals,
    a store's secret key among them: so everything that starting raises ends here."""
    if isinstance(exc, MirrorlineError):
        return exc.reason
    log.error("the engine failed to start", exc_info=exc)  # console.log: frames, no locals
    return f"the engine failed to start: {exc} (details in console.log)"


class Console(App[None]):
    """The one app: polls the source, keeps the view, runs what screens request (a Host)."""

    CSS_PATH = Path(__file__).with_name("console.tcss")  # absolute: subclasses live elsewhere
    TITLE = "mirrorline"
    BINDINGS = [
        *bindings(
            "pause_engine",
            "add_policy",
            "add_endpoint",
            "failures",
            "explain",
            "freeze",
            "audit",
            "help",
            "quit",
            *DEMO_KEYS,
        ),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        source: Service,
        *,
        refresh: float = 1.0,
        read_only: bool = False,
        starting: Callable[[], Awaitable[None]] | None = None,
        starting_says: str = "starting the engine",
        where: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.source = source
        self.refresh_every = refresh
        self.read_only = read_only
        self.where = where  # "embedded engine on DIR" or the remote URL: shown in the header
        self.clock = clock
        self.view = View()
        self._starting = starting
        self._starting_says = starting_says  # shown until the engine serves
        self._quitting = False

    @property
    def demo(self) -> DemoControl | None:
        """The source, when it is a demo: the demo keys and the demo bar are on."""
        return self.source if isinstance(self.source, DemoControl) else None

    # -- lifecycle -------------------------------------------------------------------

    def on_mount(self) -> None:
        self.push_screen(DashboardScreen())
        self.start()

    @work(exclusive=True, group="start")
    async def start(self) -> None:
        if self._starting is not None:
            self.publish(replace(self.view, starting=self._starting_says))
            try:
                await self._starting()
            except Exception as exc:  # noqa: BLE001 - one line, never a traceback with locals
                if not self._quitting:  # q pressed while starting is not a failure
                    self.exit(message=f"mirrorline: error: {failed_to_start(exc)}", return_code=1)
                return
            self.publish(replace(self.view, starting=""))
        await self.load_history()
        await self.poll_now()
        self.set_interval(self.refresh_every, self.poll)

    async def load_history(self) -> None:
        try:
            history = await self.source.history(self.clock() - HISTORY_SECONDS)
        except MirrorlineError as exc:
            self.post_message(SourceFailed(exc.reason))
            return
        self.publish(replace(self.view, history=history))

    # -- the refresh loop --------------------------------------------------------------

    def poll(self) -> None:
        # The method, not a coroutine: a poll cancelled by the next before it starts then
        # leaves no coroutine never awaited (a RuntimeWarning CI printed).
        self.run_worker(self.poll_now, exclusive=True, group="poll")

    def on_refresh_requested(self, _: RefreshRequested) -> None:
        self.poll()

    async def poll_now(self) -> None:
        """One poll: the snapshot, what the screen on top shows beyond it, the demo's state."""
        top = self.top()
        screen = top if isinstance(top, ConsoleScreen) else None
        demo = self.demo
        try:
            snapshot = await self.source.status()
            extra = await screen.fetch(self.source) if screen is not None else None
            state = await demo.demo_state() if demo is not None else None
        except MirrorlineError as exc:
            self.post_message(SourceFailed(exc.reason))
            return
        self.post_message(SnapshotReceived(snapshot, self.clock(), screen, extra, state))

    def on_snapshot_received(self, message: SnapshotReceived[Any]) -> None:
        self.publish(
            replace(
                self.view,
                snapshot=message.snapshot,
                received_at=message.received_at,
                error="",
                demo=message.demo,
            )
        )
        # Only the screen the extra was fetched for, and only while it is still on top.
        screen = message.screen
        if screen is not None and self.on_top(screen):
            self.paint(screen, message.extra)

    def on_top(self, screen: ConsoleScreen[Any]) -> bool:
        return self.top() is screen and screen.is_mounted

    @work(exclusive=True, group="paint")
    async def paint(self, screen: ConsoleScreen[Any], extra: Any) -> None:
        """A snapshot goes on screen a piece at a time (a table, or a few rows of one), the
        loop free between pieces: a key that lands during a refresh is handled and painted
        after the piece under way, not after the whole refresh (issue 12: key to repaint
        within 50 ms). A newer snapshot replaces an unfinished paint (exclusive)."""
        with contextlib.suppress(NoMatches):  # the screen torn down meanwhile
            for _ in screen.render_view(self.view, extra):
                await asyncio.sleep(0)
                if not self.on_top(screen):
                    return

    def on_source_failed(self, message: SourceFailed) -> None:
        self.publish(replace(self.view, error=message.reason))

    def top(self) -> Screen[object] | None:
        """The screen on top; none while the app shuts down and a late answer arrives."""
        stack = self.screen_stack
        return stack[-1] if stack else None

    def publish(self, view: View) -> None:
        """The view changes as a whole, and goes down to every screen's status strip (the
        one under a modal shows too); only the screen on top renders the tables."""
        self.view = view
        for screen in self.screen_stack:
            if isinstance(screen, ConsoleScreen):
                screen.view = view

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "demo":
            return self.demo is not None  # off the footer, the palette and the keys otherwise
        return allowed(action, self.read_only)

    # -- actions -------------------------------------------------------------------------

    @on(EngineRequest)
    def run_request(self, request: EngineRequest) -> None:
        """Every change a screen asks for: off the key handler, reported with a toast."""
        self.run_worker(self.execute(request), group="actions")

    async def execute(self, request: EngineRequest) -> None:
        try:
            done = await request.send(self.source)
        except MirrorlineError as exc:
            self.notify(exc.reason, title="Refused", severity="error", timeout=8)
            return
        if request.then is not None:
            request.then()
        self.notify(done)
        await self.poll_now()

    def action_pause_engine(self) -> None:
        snap = self.view.snapshot
        self.run_request(PauseRequested(paused=not (snap and snap.engine.paused)))

    def action_add_policy(self) -> None:
        self.push_screen(PolicyForm(self.source))

    def action_add_endpoint(self) -> None:
        if not isinstance(self.source, AliasWriter):
            self.notify(NO_SECRETS, title="Unavailable here", severity="warning", timeout=10)
            return
        self.push_screen(AliasForm(self.source))

    def action_demo(self, name: str) -> None:
        self.run_request(DemoRequested(action=DemoAction(name)))

    def action_failures(self) -> None:
        if not isinstance(self.screen, CausesScreen):
            self.push_screen(CausesScreen())

    def action_explain(self) -> None:
        """`w`: is this object replicated? Any key by name, answered by the engine."""
        top = self.top()
        start = top.suggested_source() if isinstance(top, ConsoleScreen) else None
        snapshot = self.view.snapshot
        sources = sorted({p.source for p in snapshot.policies}) if snapshot else []

        def asked(where: tuple[str, str] | None) -> None:
            if where is not None:
                self.push_screen(ExplainScreen(*where))

        self.push_screen(KeyPrompt(f"{start}/" if start else "", sources), asked)

    def notify(self, message: str, *, markup: bool = True, **kwargs: Any) -> None:  # type: ignore[override]
        """Every toast as plain text with control characters escaped, whatever `markup` a
        widget passes (Textual's default is markup on): toasts quote keys and servers'
        error texts, which must neither style nor drive the terminal."""
        super().notify(printable(message), markup=False, **kwargs)

    def action_freeze(self) -> None:
        frozen = not self.view.frozen
        self.publish(replace(self.view, frozen=frozen))
        self.notify("Display frozen (the engine keeps running)" if frozen else "Live")
        if not frozen:
            self.poll()  # catch up now, not at the next tick

    def action_audit(self) -> None:
        self.push_screen(AuditScreen(self.source))

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        if self._quitting:
            return
        self._quitting = True
        if self._starting is not None:
            self.notify("Draining the engine: running copies finish or return to the queue")
        self.run_worker(self._close(), group="close")

    async def _close(self) -> None:
        await self.source.close()
        self.exit()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for binding in [*self.BINDINGS, *screen.BINDINGS]:
            if not isinstance(binding, Binding) or binding.id not in ACTIONS:
                continue
            action = ACTIONS[binding.id]
            _, name, parameters = parse_action(action.call)
            target = screen if hasattr(screen, f"action_{name}") else self
            if target.check_action(name, parameters) is False:
                continue
            yield SystemCommand(
                f"{action.label} ({binding.key_display or binding.key})",
                action.description,
                partial(self.run_action, action.call, target),
            )
