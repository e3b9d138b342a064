"""The dashboard: everything at a glance, every action one key away.

status strip (engine, links, freshness); on a demo, the demo bar
policies      PENDING IN-FLT RETRY FAILED LAG RATE per policy (none yet: what to do first)
trends        throughput · backlog · lag, the last minutes
in flight     per transfer progress        recent failures
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.events import Resize
from textual.widgets import DataTable, Footer, Label

from engine.model import Task, TaskState
from engine.service import Service, TaskPage, next_step
from engine.telemetry.snapshot import PolicyStats, Snapshot, Transfer
from tui import fmt
from tui.actions import bindings
from tui.messages import RetryRequested
from tui.screens.failures import FailuresScreen
from tui.screens.form import say
from tui.screens.policy_actions import PolicyActions
from tui.screens.task_detail import TaskDetail, failure_state
from tui.view import View
from tui.widgets.table import Cell, LiveTable
from tui.widgets.trend import Series, Trend

RECENT_FAILURES = 30
STATE_STYLE = {
    "active": "success",
    "paused": "warning",
    "disabled": "dim",
    "stopped": "dim",
    "waiting": "error",
}
NARROW_HIDES = {"source", "limit"}  # at 80 columns the target says enough


@dataclass(frozen=True)
class Fetched:
    """What the dashboard reads beside the snapshot."""

    failures: TaskPage
    aliases: int | None  # counted only while there is no policy: the first-run hint needs it


def policy_state(p: PolicyStats, snapshot: Snapshot) -> str:
    """'waiting' is a link that is down: dispatch held, nothing failing."""
    if p.state != "enabled":
        return p.state
    if not snapshot.engine.running:
        return "stopped"
    down = {link.alias for link in snapshot.links if link.online is False}
    return "waiting" if {p.source_alias, p.target_alias} & down else "active"


def policy_row(p: PolicyStats, snapshot: Snapshot) -> list[Cell]:
    state = policy_state(p, snapshot)
    b = p.backlog
    rate = fmt.rate(p.rate.current_bytes) if snapshot.engine.running else "-"
    return [
        p.id,
        p.source,
        p.target,
        (state, STATE_STYLE.get(state, "")),
        fmt.count(b.pending),
        fmt.count(b.in_flight),
        fmt.count(b.retrying),
        (fmt.count(b.failed), "error" if b.failed else ""),
        fmt.duration(b.oldest_pending_age) if b.pending else "-",
        rate,
        f"{fmt.size(p.bandwidth_limit)}/s" if p.bandwidth_limit else "-",
    ]


def transfer_row(t: Transfer) -> list[Cell]:
    return [
        fmt.middle(f"{t.policy}: {t.key}", 34),
        fmt.size(t.size),
        fmt.bar(t.bytes_done, t.size, 10),
        fmt.rate(t.speed),
        str(t.attempt),
    ]


def failure_row(t: Task, now: float) -> list[Cell]:
    return [
        fmt.clock(t.updated_at),
        t.policy,
        fmt.middle(t.key, 28),
        failure_state(t, now),
        t.last_error.splitlines()[0] if t.last_error else "",
    ]


class DashboardScreen(PolicyActions[Fetched]):
    BINDINGS = bindings(
        "pause_policy",
        "retry",
        "retry_all",
        "edit_policy",
        "toggle_policy",
        "delete_policy",
        "resync",
        "details",
        "copy",
    )

    def __init__(self) -> None:
        super().__init__()
        self.series = Series()
        self._seeded = False
        self.failures: dict[str, Task] = {}  # the recent failures shown, by row key

    def compose(self) -> ComposeResult:
        yield from self.header()
        with Vertical(id="policies-panel", classes="panel") as panel:
            panel.border_title = "Policies"
            yield Label("", id="first-run")
            yield LiveTable(
                [
                    ("id", "ID"),
                    ("source", "SOURCE"),
                    ("target", "TARGET"),
                    ("state", "STATE"),
                    ("pending", "PENDING"),
                    ("in_flight", "IN-FLT"),
                    ("retrying", "RETRY"),
                    ("failed", "FAILED"),
                    ("lag", "LAG"),
                    ("rate", "RATE"),
                    ("limit", "LIMIT"),
                ],
                cap=200,
                id="policies",
            )
        with Horizontal(id="trends"):
            yield Trend("Throughput", 0, fmt.rate, classes="panel")
            yield Trend("Backlog", 1, fmt.count, classes="panel")
            yield Trend("Lag", 2, fmt.duration, classes="panel")
        with Horizontal(id="bottom"):
            with Vertical(id="transfers-panel", classes="panel") as transfers:
                transfers.border_title = "In flight"
                yield LiveTable(
                    [
                        ("key", "KEY"),
                        ("size", "SIZE"),
                        ("progress", "PROGRESS"),
                        ("speed", "SPEED"),
                        ("attempt", "TRY"),
                    ],
                    cap=100,
                    id="transfers",
                )
            with Vertical(id="failures-panel", classes="panel") as failures:
                failures.border_title = "Recent failures"
                yield LiveTable(
                    [
                        ("at", "AT"),
                        ("policy", "POLICY"),
                        ("key", "KEY"),
                        ("state", "STATE"),
                        ("error", "ERROR"),
                    ],
                    cap=RECENT_FAILURES,
                    id="recent",
                )
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#policies", LiveTable).focus()

    def on_resize(self, event: Resize) -> None:
        # At 80x24 the trends and the failures pane fold away; policies and header stay.
        narrow = event.size.width < 100 or event.size.height < 30
        self.set_class(narrow, "narrow")
        self.query_one("#policies", LiveTable).hide(
            NARROW_HIDES if event.size.width < 100 else set()
        )

    async def fetch(self, source: Service) -> Fetched:
        failures = await source.tasks(
            [TaskState.FAILED, TaskState.RETRYING], limit=RECENT_FAILURES, descending=True
        )
        last = self.host.view.snapshot
        aliases = len(await source.aliases()) if last is None or not last.policies else None
        return Fetched(failures, aliases)

    def watch_view(self, view: View) -> None:
        """Before the first snapshot, the empty table says what is starting."""
        if view.snapshot is None:
            with contextlib.suppress(NoMatches):  # handed a view before it has composed
                say(
                    self.query_one("#first-run", Label),
                    f"{view.starting}…" if view.starting else "",
                )

    def render_view(self, view: View, extra: Fetched) -> None:
        snapshot = view.snapshot
        if snapshot is None:
            return
        hint = next_step(extra.aliases, 0) if extra.aliases is not None else None
        say(self.query_one("#first-run", Label), hint if not snapshot.policies and hint else "")
        now = self.host.clock()
        if not self._seeded:
            self.series.seed(view.history)
            self._seeded = True
        self.series.sample(snapshot, now)
        for trend in self.query(Trend):
            trend.update(self.series)
        if view.frozen:
            return
        self.query_one("#policies", LiveTable).sync(
            [(p.id, policy_row(p, snapshot)) for p in snapshot.policies]
        )
        transfers = sorted(snapshot.transfers, key=lambda t: t.started_at)
        self.query_one("#transfers", LiveTable).sync(
            [(str(t.task_id), transfer_row(t)) for t in transfers]
        )
        self.query_one("#transfers-panel").border_title = f"In flight ({len(transfers)})"
        self.failures = {str(t.id): t for t in extra.failures.tasks}
        self.query_one("#recent", LiveTable).sync(
            [(str(t.id), failure_row(t, now)) for t in extra.failures.tasks]
        )
        total = sum(p.backlog.failed + p.backlog.retrying for p in snapshot.policies)
        self.query_one(
            "#failures-panel"
        ).border_title = f"Recent failures ({fmt.count(total)} failed or retrying)"

    # -- actions on the selected row -------------------------------------------------

    def selected_failure(self) -> Task | None:
        """The failure under the cursor, only while that panel has the focus (and shows)."""
        table = self.query_one("#recent", LiveTable)
        key = table.selected_key if table.has_focus else None
        return self.failures.get(key) if key else None

    def action_retry(self) -> None:
        task = self.selected_failure()
        if task is None:
            self.notify(
                "Move to Recent failures (tab) and pick one, or open all failures with F",
                severity="warning",
            )
            return
        self.post_message(RetryRequested(ids=[task.id]))

    @on(DataTable.RowSelected)
    def action_details(self) -> None:
        focused = self.focused
        if focused is not None and focused.id == "recent":
            task = self.selected_failure()
            if task is not None:
                self.app.push_screen(TaskDetail(task))
        elif focused is not None and focused.id == "policies":
            self.app.push_screen(FailuresScreen(policy=self.selected_policy_id()))

    def action_copy(self) -> None:
        task = self.selected_failure()
        if task is None:
            return
        self.app.copy_to_clipboard(f"{task.key}\t{task.last_error}")
        self.notify(f"Copied {task.key!r} and its error")
