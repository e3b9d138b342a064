"""The failed and retrying tasks (of one cause, from tui.screens.causes), a page at a time.

The engine may hold a hundred thousand failures; the table holds one page
(PAGE rows) and asks for the next with a cursor, so the view costs the same
at any size. `/` filters on the engine side (key or error text), marks survive
paging, and export walks every page of the current filter. Enter opens the
object's whole story (tui.screens.explain).
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Input, Label

from engine.errors import MirrorlineError
from engine.model import Cause, Task, TaskState
from engine.printable import printable, spreadsheet_cell
from engine.service import MAX_PAGE, Service, TaskPage
from tui import fmt
from tui.actions import bindings
from tui.messages import RefreshRequested, RetryRequested
from tui.screens import ConsoleScreen
from tui.screens.explain import ExplainScreen
from tui.screens.policy_actions import confirm_retry_all
from tui.view import View
from tui.widgets.table import Cell, LiveTable

PAGE = 200
PARKED = [TaskState.FAILED, TaskState.RETRYING]
SORTS = ("id", "key", "attempts", "size", "error")


def failure_state(t: Task, now: float) -> Cell:
    """What happens next to a parked task, in one cell."""
    if t.state is TaskState.FAILED:
        return ("FAILED", "error")
    return (f"retry {t.attempts} in {fmt.duration(max(0.0, t.next_at - now))}", "warning")


class FailuresScreen(ConsoleScreen[TaskPage]):
    BINDINGS = [
        *bindings("retry", "retry_all", "filter", "mark", "details", "copy", "export", "dashboard"),
        Binding("escape", "back", "Back"),
        Binding("right_square_bracket,pagedown", "page(1)", "Next page"),
        Binding("left_square_bracket,pageup", "page(-1)", "Prev page"),
        Binding("o", "order", "Newest/oldest", show=False),
        Binding("S", "sort", "Sort page", show=False),
    ]

    def __init__(self, policy: str | None = None, cause: Cause | None = None) -> None:
        super().__init__()
        self.policy = policy
        self.cause = cause  # only this cause's tasks (Enter on a cause)
        self.query_text = ""
        self.newest_first = True
        self.sort_by = "id"
        self.cursors: list[int] = [0]  # start cursor of each page seen; the last is current
        self.next_cursor: int | None = None
        self.page: list[Task] = []
        self.marked: set[int] = set()

    def compose(self) -> ComposeResult:
        yield from self.header()
        yield Label("", id="where")
        yield Input(
            placeholder="filter: part of a key or an error, Enter applies, Esc clears", id="filter"
        )
        yield LiveTable(
            [
                ("mark", " "),
                ("id", "ID"),
                ("policy", "POLICY"),
                ("key", "KEY"),
                ("state", "STATE"),
                ("attempts", "TRIES"),
                ("size", "SIZE"),
                ("class", "CLASS"),
                ("error", "ERROR"),
            ],
            cap=PAGE,
            id="failures",
        )
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.query_one("#failures", LiveTable).focus()
        self.post_message(RefreshRequested())  # its first page now, not at the next tick

    # -- data ------------------------------------------------------------------------

    async def fetch(self, source: Service) -> TaskPage:
        return await source.tasks(
            PARKED,
            self.policy,
            PAGE,
            self.cursors[-1],
            self.query_text,
            self.newest_first,
            cause=self.cause,
        )

    def render_view(self, view: View, extra: TaskPage) -> Iterator[None]:
        snapshot = view.snapshot
        if view.frozen:
            return
        self.page, self.next_cursor = extra.tasks, extra.next
        total = 0
        if snapshot is not None:
            total = sum(
                p.backlog.failed + p.backlog.retrying
                for p in snapshot.policies
                if self.policy in (None, p.id)
            )
        first = (len(self.cursors) - 1) * PAGE + 1
        scope = f"policy {self.policy}" if self.policy else "all policies"
        if self.cause is not None:
            c = self.cause
            scope += f" · {c.code or c.error_class} on {c.op.value.upper()}"
        shown = f"rows {first:,} to {first + len(self.page) - 1:,}" if self.page else "no rows"
        filtered = f" · filter {printable(self.query_text)!r}" if self.query_text else ""
        of = "" if self.cause else f" of {total:,} failed or retrying"
        self.query_one("#where", Label).update(
            Text(
                f" Failures · {scope}{filtered} · {shown}{of} · "
                f"{'newest' if self.newest_first else 'oldest'} first · {len(self.marked)} marked"
            )
        )
        yield from self.query_one("#failures", LiveTable).sync_steps(self.rows())

    def rows(self) -> list[tuple[str, list[Cell]]]:
        now = self.host.clock()
        tasks = self.page
        if self.sort_by != "id":
            field = {"key": "key", "attempts": "attempts", "size": "size", "error": "last_error"}
            tasks = sorted(tasks, key=lambda t: getattr(t, field[self.sort_by]))
        return [
            (
                str(t.id),
                [
                    ("✓", "primary") if t.id in self.marked else "",
                    str(t.id),
                    t.policy,
                    t.key,
                    failure_state(t, now),
                    str(t.attempts),
                    fmt.size(t.size),
                    t.error_class,
                    t.last_error.splitlines()[0] if t.last_error else "",
                ],
            )
            for t in tasks
        ]

    def refresh_now(self, reset: bool = False) -> None:
        if reset:
            self.cursors = [0]
            table = self.query_one("#failures", LiveTable)
            table.clear()
        self.post_message(RefreshRequested())

    # -- selection -------------------------------------------------------------------

    def selected(self) -> Task | None:
        key = self.query_one("#failures", LiveTable).selected_key
        return next((t for t in self.page if str(t.id) == key), None)

    @on(DataTable.RowSelected)
    def action_details(self) -> None:
        task = self.selected()
        if task is None:
            return
        snapshot = self.host.view.snapshot
        policy = snapshot.policy(task.policy) if snapshot else None
        if policy is None:
            self.notify(f"Policy {task.policy} is gone: its source is unknown", severity="warning")
            return
        self.app.push_screen(ExplainScreen(policy.source, task.key, task))

    def action_mark(self) -> None:
        task = self.selected()
        if task is None:
            return
        self.marked.symmetric_difference_update({task.id})
        table = self.query_one("#failures", LiveTable)
        mark = table.text(("✓", "primary") if task.id in self.marked else "")
        table.update_cell(str(task.id), "mark", mark)
        table.action_cursor_down()

    def action_copy(self) -> None:
        task = self.selected()
        if task is not None:
            self.app.copy_to_clipboard(f"{task.key}\t{task.last_error}")
            self.notify(f"Copied {task.key!r} and its error")

    # -- paging, filter, order -----------------------------------------------------------

    def action_page(self, step: int) -> None:
        if step > 0 and self.next_cursor is not None:
            self.cursors.append(self.next_cursor)
        elif step < 0 and len(self.cursors) > 1:
            self.cursors.pop()
        else:
            return
        self.refresh_now()

    def action_order(self) -> None:
        self.newest_first = not self.newest_first
        self.refresh_now(reset=True)

    def action_sort(self) -> None:
        self.sort_by = SORTS[(SORTS.index(self.sort_by) + 1) % len(SORTS)]
        self.notify(f"Page sorted by {self.sort_by}")
        self.query_one("#failures", LiveTable).clear()
        self.refresh_now()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.focus()

    @on(Input.Submitted, "#filter")
    def apply_filter(self, event: Input.Submitted) -> None:
        self.query_text = event.value.strip()
        if not self.query_text:
            event.input.display = False
        self.query_one("#failures", LiveTable).focus()
        self.refresh_now(reset=True)

    def action_back(self) -> None:
        box = self.query_one("#filter", Input)
        if box.display or self.query_text:
            box.value, box.display, self.query_text = "", False, ""
            self.query_one("#failures", LiveTable).focus()
            self.refresh_now(reset=True)
        else:
            self.app.pop_screen()

    # -- actions -------------------------------------------------------------------------

    def action_retry(self) -> None:
        ids = sorted(self.marked) or ([t.id] if (t := self.selected()) else [])
        if not ids:
            return
        # The marks are kept if the engine refuses: fix and press r again.
        self.post_message(RetryRequested(ids=ids, then=self.marked.clear))

    def action_retry_all(self) -> None:
        confirm_retry_all(self, self.policy)

    def action_export(self) -> None:
        self.export()

    @work(exclusive=True, group="export")
    async def export(self) -> None:
        """Every failure matching the view, not just this page: CSV for people, JSON for tools."""
        rows: list[dict[str, object]] = []
        after = 0
        try:
            while True:
                page = await self.host.source.tasks(
                    PARKED, self.policy, MAX_PAGE, after, self.query_text, cause=self.cause
                )
                rows += [
                    {**asdict(t), "op": t.op.value, "state": t.state.value} for t in page.tasks
                ]
                if page.next is None:
                    break
                after = page.next
        except MirrorlineError as exc:
            self.notify(f"Export failed: {exc.reason}", severity="error")
            return
        stem = Path.cwd() / time.strftime("mirrorline-failures-%Y%m%d-%H%M%S")
        try:
            await asyncio.to_thread(write_export, stem, rows)
        except OSError as exc:
            self.notify(f"Export failed: {exc.strerror or exc}", severity="error")
            return
        self.notify(f"Exported {len(rows):,} task(s) to {stem}.csv and .json", timeout=10)


def private(path: str) -> int:
    """A new file only its owner reads: keys and error texts are the bucket's business."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)


def write_export(stem: Path, rows: list[dict[str, object]]) -> None:
    """CSV cells a spreadsheet would run as formulas are neutralised; the JSON is as is."""
    columns = list(rows[0]) if rows else ["id"]
    with open(private(f"{stem}.csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        writer.writerows(
            {k: spreadsheet_cell(v) if isinstance(v, str) else v for k, v in row.items()}
            for row in rows
        )
    with open(private(f"{stem}.json"), "w") as fh:
        json.dump(rows, fh, indent=1)
