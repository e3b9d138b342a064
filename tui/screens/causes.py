"""Failures by cause: ten thousand tasks parked for one reason read as one line.

A cause is (policy, operation, error class, reason code), grouped by the
engine; Enter opens that cause's tasks (tui.screens.failures), paged and
filterable, and Enter on a task the object's whole story.
"""

from __future__ import annotations

from collections.abc import Iterator

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Label

from engine.model import Cause, FailureGroup
from engine.service import Service
from tui import fmt
from tui.actions import bindings
from tui.messages import RefreshRequested
from tui.screens import ConsoleScreen
from tui.screens.failures import FailuresScreen
from tui.screens.policy_actions import confirm_retry_all
from tui.view import View
from tui.widgets.table import Cell, LiveTable


def cause_key(cause: Cause) -> str:
    """A cause as a table row key."""
    return "\x1f".join((cause.policy, cause.op.value, cause.error_class, cause.code))


def cause_row(g: FailureGroup) -> list[Cell]:
    """`NoSuchBucket  PUT  logs  60 tasks  first 09:17:57`: the dashboard's line for a cause."""
    tone = "error" if g.failed else "warning"
    return [
        (g.cause.code or g.cause.error_class or "?", tone),
        g.cause.op.value.upper(),
        g.cause.policy,
        f"{g.count:,} tasks",
        f"first {fmt.clock(g.first_seen)}",
    ]


def cause_detail(g: FailureGroup) -> list[Cell]:
    """The same cause with room to spare: how many are parked for good, the bytes, an example."""
    return [
        *cause_row(g),
        g.cause.error_class,
        f"{g.failed:,} failed · {g.count - g.failed:,} retrying",
        fmt.size(g.bytes),
        fmt.clock(g.last_seen),
        fmt.middle(g.example_key, 30),
        g.example_error.splitlines()[0] if g.example_error else "",
    ]


class CausesScreen(ConsoleScreen[list[FailureGroup]]):
    BINDINGS = [
        *bindings("retry_all", "details", "copy", "dashboard"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, policy: str | None = None) -> None:
        super().__init__()
        self.policy = policy
        self.groups: dict[str, FailureGroup] = {}

    def compose(self) -> ComposeResult:
        yield from self.header()
        yield Label("", id="where")
        yield LiveTable(
            [
                ("code", "CAUSE"),
                ("op", "OP"),
                ("policy", "POLICY"),
                ("count", "TASKS"),
                ("first", "FIRST"),
                ("class", "CLASS"),
                ("split", "STATE"),
                ("bytes", "SIZE"),
                ("last", "LAST"),
                ("example", "EXAMPLE"),
                ("error", "ERROR"),
            ],
            cap=500,
            id="causes",
        )
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#causes", LiveTable).focus()
        self.post_message(RefreshRequested())  # its causes now, not at the next tick

    async def fetch(self, source: Service) -> list[FailureGroup]:
        return await source.failure_groups(self.policy)

    def render_view(self, view: View, extra: list[FailureGroup]) -> Iterator[None]:
        if view.frozen:
            return
        self.groups = {cause_key(g.cause): g for g in extra}
        scope = f"policy {self.policy}" if self.policy else "all policies"
        total = sum(g.count for g in extra)
        self.query_one("#where", Label).update(
            f" Failures by cause · {scope} · {len(extra):,} cause(s) · {total:,} failed or "
            "retrying · Enter opens a cause's tasks"
        )
        yield from self.query_one("#causes", LiveTable).sync_steps(
            [(cause_key(g.cause), cause_detail(g)) for g in extra]
        )

    def selected(self) -> FailureGroup | None:
        key = self.query_one("#causes", LiveTable).selected_key
        return self.groups.get(key) if key else None

    @on(DataTable.RowSelected)
    def action_details(self) -> None:
        group = self.selected()
        if group is not None:
            self.app.push_screen(FailuresScreen(policy=group.cause.policy, cause=group.cause))

    def action_copy(self) -> None:
        group = self.selected()
        if group is not None:
            self.app.copy_to_clipboard(f"{group.example_key}\t{group.example_error}")
            self.notify(f"Copied an example of {group.cause.code}: {group.example_key!r}")

    def action_retry_all(self) -> None:
        confirm_retry_all(self, self.policy)

    def action_back(self) -> None:
        self.app.pop_screen()
