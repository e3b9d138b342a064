"""The console app: one refresh loop, one source, screens that render snapshots.

A timer asks the source for a snapshot every `--refresh` seconds in an exclusive
worker (a slow remote engine cannot stack requests up), and hands it to the
screen on top. Keys never wait for a refresh: actions run as workers and
report with a toast. Freezing the display stops rendering, not the engine.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen

from engine.errors import MirrorlineError
from engine.service import Service
from engine.telemetry.snapshot import HistoryPoint, Snapshot
from tui.actions import ACTIONS, bindings

HISTORY_SECONDS = 15 * 60  # sparklines reach back this far (from the engine's history)


@dataclass
class View:
    """What the screens render: the latest snapshot and how fresh it is."""

    snapshot: Snapshot | None = None
    received_at: float = 0.0  # our clock when it arrived
    error: str = ""  # the source's last failure, shown until a poll succeeds
    frozen: bool = False
    history: list[HistoryPoint] = field(default_factory=list)


class Console(App[None]):
    CSS_PATH = Path(__file__).with_name("console.tcss")  # absolute: subclasses live elsewhere
    TITLE = "mirrorline"
    BINDINGS = [
        *bindings("pause_engine", "add_policy", "failures", "freeze", "audit", "help", "quit"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        source: Service,
        *,
        refresh: float = 1.0,
        read_only: bool = False,
        starting: Callable[[], Awaitable[None]] | None = None,
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
        self._quitting = False

    # -- lifecycle -------------------------------------------------------------------

    def on_mount(self) -> None:
        from tui.screens.dashboard import DashboardScreen

        self.push_screen(DashboardScreen())
        self.start()

    @work(exclusive=True, group="start")
    async def start(self) -> None:
        if self._starting is not None:
            try:
                await self._starting()
            except MirrorlineError as exc:
                if not self._quitting:  # q pressed while starting is not a failure
                    self.exit(message=f"mirrorline: error: {exc.reason}", return_code=1)
                return
        await self.load_history()
        await self.poll_now()
        self.set_interval(self.refresh_every, self.poll)

    async def load_history(self) -> None:
        try:
            self.view.history = await self.source.history(self.clock() - HISTORY_SECONDS)
        except MirrorlineError as exc:
            self.view.error = exc.reason

    def poll(self) -> None:
        self.run_worker(self.poll_now(), exclusive=True, group="poll")

    async def poll_now(self) -> None:
        screen = self.screen
        try:
            snapshot = await self.source.status()
            # What the screen on top needs beyond the snapshot (a page of failures, say).
            fetch = getattr(screen, "fetch", None)
            extra = await fetch(self.source) if fetch else None
        except MirrorlineError as exc:
            self.view.error = exc.reason
            self.show()
            return
        self.view.snapshot, self.view.received_at, self.view.error = snapshot, self.clock(), ""
        if self.screen is screen:  # the page fetched belongs to the screen still on top
            self.show(extra)

    def show(self, extra: object = None) -> None:
        """Render on the screen on top; a modal on top keeps the screen under it still."""
        render = getattr(self.screen, "render_view", None)
        if render is not None and self.screen.is_mounted:
            with self.batch_update(), contextlib.suppress(NoMatches):  # torn down meanwhile
                render(self.view, extra)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        known = ACTIONS.get(action)
        return not (known is not None and known.mutates and self.read_only)

    # -- actions -------------------------------------------------------------------------

    def act(
        self,
        what: Callable[[], Awaitable[object]],
        done: str,
        then: Callable[[], None] = lambda: None,
    ) -> None:
        """Run an engine action off the key handler; report how it went (`then` on success)."""

        async def run() -> None:
            try:
                await what()
            except MirrorlineError as exc:
                self.notify(exc.reason, title="Refused", severity="error", timeout=8)
                return
            then()
            self.notify(done)
            await self.poll_now()

        self.run_worker(run(), group="actions")

    def action_pause_engine(self) -> None:
        snap = self.view.snapshot
        paused = not (snap and snap.engine.paused)
        self.act(
            lambda: self.source.set_paused(paused),
            "Engine paused: transfers stop, detection goes on" if paused else "Engine resumed",
        )

    def action_add_policy(self) -> None:
        from tui.screens.policy_form import PolicyForm

        self.push_screen(PolicyForm(self.source))

    def action_failures(self) -> None:
        from tui.screens.failures import FailuresScreen

        if not isinstance(self.screen, FailuresScreen):
            self.push_screen(FailuresScreen())

    def action_dashboard(self) -> None:
        while len(self.screen_stack) > 2:
            self.pop_screen()

    def action_freeze(self) -> None:
        self.view.frozen = not self.view.frozen
        self.notify("Display frozen (the engine keeps running)" if self.view.frozen else "Live")
        self.show()

    def action_audit(self) -> None:
        from tui.screens.audit import AuditScreen

        self.push_screen(AuditScreen(self.source))

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

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
            if not isinstance(binding, Binding) or binding.action not in ACTIONS:
                continue
            action = ACTIONS[binding.action]
            if self.check_action(action.name, ()) is False:
                continue
            target = screen if hasattr(screen, f"action_{action.name}") else self
            yield SystemCommand(
                f"{action.label} ({binding.key_display or binding.key})",
                action.description,
                getattr(target, f"action_{action.name}"),
            )
