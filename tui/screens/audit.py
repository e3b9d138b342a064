"""The audit log: who paused, retried, added or removed what, and when."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Label

from engine.errors import MirrorlineError
from engine.printable import printable
from engine.service import Service
from tui import fmt
from tui.screens import ConsoleModal


class AuditScreen(ConsoleModal[None]):
    BINDINGS = [Binding("escape,l,q", "dismiss", "Close")]

    def __init__(self, source: Service) -> None:
        super().__init__()
        self.source = source

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog audit"):
            yield Label("Operator actions, newest first", classes="title")
            yield DataTable(cursor_type="row", zebra_stripes=True, id="audit")
            yield Label("esc to close", classes="hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for name in ("WHEN", "WHO", "ACTION", "DETAIL"):
            table.add_column(name, key=name.lower())
        self.load()

    @work(exclusive=True)
    async def load(self) -> None:
        try:
            entries = await self.source.audit(200)
        except MirrorlineError as exc:
            self.notify(exc.reason, severity="error")
            return
        table = self.query_one(DataTable)
        for e in entries:
            # Text, never markup: a detail quotes keys and names a client typed.
            cells = (e.actor, e.action, e.detail)
            table.add_row(time_of(e.at), *(Text(printable(c)) for c in cells), key=str(e.id))


def time_of(at: float) -> str:
    return f"{fmt.clock(at)} ({fmt.ago(at)})"
