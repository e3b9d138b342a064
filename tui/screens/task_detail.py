"""One task in full: what it is, what went wrong, and what happens next.

`failure_state` is the same answer in one table cell, for the lists of failures.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Label, Static

from engine.errors import MirrorlineError
from engine.model import Attempt, Task, TaskState
from tui import fmt
from tui.messages import RetryRequested
from tui.screens import ConsoleModal
from tui.widgets.table import Cell


def failure_state(t: Task, now: float) -> Cell:
    if t.state is TaskState.FAILED:
        return ("FAILED", "error")
    return (f"retry {t.attempts} in {fmt.duration(max(0.0, t.next_at - now))}", "warning")


def describe(task: Task, now: float) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    next_try = "waits for an operator (r to retry)"
    if task.state is TaskState.RETRYING:
        next_try = f"{fmt.clock(task.next_at)} (in {fmt.duration(max(0.0, task.next_at - now))})"
    for name, value in (
        ("task", str(task.id)),
        ("policy", task.policy),
        ("key", task.key),
        ("version", task.version_id),
        ("operation", task.op.value),
        ("size", f"{fmt.size(task.size)} ({task.size:,} bytes)"),
        ("state", task.state.value),
        ("error class", task.error_class or "-"),
        ("attempts", str(task.attempts)),
        ("next attempt", next_try),
        ("queued", f"{fmt.clock(task.created_at)} ({fmt.ago(task.created_at, now)})"),
        ("last change", f"{fmt.clock(task.updated_at)} ({fmt.ago(task.updated_at, now)})"),
    ):
        grid.add_row(name, Text(value))
    return grid


def history(attempts: list[Attempt]) -> Table | Text:
    if not attempts:
        return Text("none recorded")
    grid = Table.grid(padding=(0, 2))
    for a in attempts:
        first = a.error.splitlines()[0] if a.error else ""
        grid.add_row(f"#{a.n}", fmt.clock(a.at), a.kind, Text(first, overflow="ellipsis"))
    return grid


class TaskDetail(ConsoleModal[None]):
    BINDINGS = [
        Binding("escape,q", "dismiss", "Back"),
        Binding("c", "copy", "Copy key and error"),
        Binding("r", "retry", "Retry"),
    ]

    def __init__(self, task: Task) -> None:
        super().__init__()
        self.task_shown = task

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog detail"):
            yield Label(f"Task {self.task_shown.id}", classes="title")
            yield Static(describe(self.task_shown, self.host.clock()))
            yield Label("last error", classes="name")
            with VerticalScroll(classes="error-text"):
                yield Static(Text(self.task_shown.last_error or "-"))
            yield Label("attempts", classes="name")
            yield Static("loading…", id="attempts")
            yield Label("esc back · r retry · c copy", classes="hint")

    def on_mount(self) -> None:
        self.load()

    @work(exclusive=True)
    async def load(self) -> None:
        try:
            attempts = await self.host.source.attempts(self.task_shown.id)
        except MirrorlineError as exc:
            self.query_one("#attempts", Static).update(Text(exc.reason))
            return
        self.query_one("#attempts", Static).update(history(attempts))

    def action_retry(self) -> None:
        if self.host.read_only:
            self.notify("Read-only console: no actions", severity="warning")
            return
        self.post_message(RetryRequested(ids=[self.task_shown.id]))  # handled before it closes
        self.dismiss(None)

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(f"{self.task_shown.key}\t{self.task_shown.last_error}")
        self.notify("Copied the key and the error")
