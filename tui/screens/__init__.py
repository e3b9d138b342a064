"""Screens: the dashboard, the failures view, and the modals over them.

A `ConsoleScreen[T]` is a full screen the refresh loop renders. Each poll the
app awaits the top screen's `fetch()` alongside the snapshot (so one exclusive
worker covers both and a slow engine cannot stack requests), then hands the
view and that same screen's `T` back to its `render_view()`, which the app runs a
piece at a time. The pairing is by construction, so a screen never has to sort out
what it was given.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar, cast

from textual.app import ComposeResult
from textual.reactive import var
from textual.screen import ModalScreen, Screen

from engine.service import Service
from tui.actions import allowed
from tui.view import Host, View
from tui.widgets.demo import DemoBar
from tui.widgets.status import StatusBar

T = TypeVar("T")
R = TypeVar("R")


class ConsoleScreen(Screen[None], Generic[T]):
    """A full screen: fed a view on every change, rendered on every poll; obeys --read-only."""

    # Handed down by the app whenever its view changes (a poll, a failure, freeze), to
    # every screen in the stack; the status strip binds to it.
    view: var[View] = var(View, always_update=True)

    @property
    def host(self) -> Host:
        """The app, as far as a screen may use it (the console's app is always a Host)."""
        return cast(Host, self.app)

    async def fetch(self, service: Service) -> T:
        """What this screen shows beyond the snapshot, fetched with it on every poll.

        Screens that need nothing more are `ConsoleScreen[None]` and keep this default.
        """
        return cast(T, None)

    def render_view(self, view: View, extra: T) -> Iterator[None]:
        """Show a fresh snapshot, with what `fetch()` returned for it: a generator that
        yields between pieces (a table, a few rows), so the app can let keys in between."""
        yield

    def suggested_source(self) -> str | None:
        """The ALIAS/BUCKET that `w` (explain a key) starts from: a screen's selected
        policy's, else the first policy's."""
        snapshot = self.host.view.snapshot
        return snapshot.policies[0].source if snapshot and snapshot.policies else None

    def header(self) -> ComposeResult:
        """The status strip, and on a demo's console the demo bar; bound to this screen's view."""
        host = self.host
        bar = StatusBar(clock=host.clock, refresh=host.refresh_every, where=host.where, id="status")
        yield bar.data_bind(ConsoleScreen.view)
        if host.demo is not None:
            yield DemoBar(clock=host.clock, id="demo").data_bind(ConsoleScreen.view)

    def on_mount(self) -> None:  # runs besides a subclass's own on_mount (Textual walks the MRO)
        self.view = self.host.view  # a screen pushed between polls starts from the latest

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return allowed(action, self.host.read_only)

    def action_dashboard(self) -> None:
        """`d`: back to the dashboard, from however deep (causes, a cause's tasks)."""
        while len(self.app.screen_stack) > 2:  # the default screen, then the dashboard
            self.app.pop_screen()


class ConsoleModal(ModalScreen[R], Generic[R]):
    """A dialog over a screen; the screen under it holds still until it closes."""

    @property
    def host(self) -> Host:
        return cast(Host, self.app)
