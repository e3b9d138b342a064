"""`?`: every key, from the same table that binds them (the demo's too, on a demo)."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Label, Static

from tui.actions import ACTIONS, key_label
from tui.screens import ConsoleModal

EXTRA = (
    ("tab, shift+tab", "Move between panels"),
    ("j, k, arrows", "Move in a table"),
    ("[, ]", "Previous / next page of failures"),
    ("o", "Failures: newest or oldest first"),
    ("S", "Failures: sort the page by id, key, tries, size, error"),
    ("esc", "Back, or clear the filter"),
    ("ctrl+p", "Command palette: every action by name"),
)


class HelpScreen(ConsoleModal[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        read_only, demo = self.host.read_only, self.host.demo is not None
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        for action in ACTIONS.values():
            if action.demo and not demo:
                continue  # the demo's keys exist only in `mirrorline demo`
            note = " (off: --read-only)" if action.mutates and read_only else ""
            table.add_row(key_label(action), action.description + note)
        for keys, what in EXTRA:
            table.add_row(keys, what)
        with Vertical(classes="dialog help"):
            yield Label("Keys", classes="title")
            with VerticalScroll():
                yield Static(table, id="keys")
            yield Label("esc or ? to close", classes="hint")
