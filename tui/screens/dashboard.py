"""The dashboard: everything at a glance, every action one key away.

status strip (engine, links, freshness); on a demo, the demo bar
policies      PENDING IN-FLT RETRY FAILED LAG RATE per policy (none yet: what to do first)
trends        throughput · backlog · lag, the last minutes
in flight     per transfer progress        failures, a line per cause

Enter on a cause opens its tasks, Enter on a task the object's whole story.
At 80 columns the policies table keeps ID, STATE, PENDING, FAILED and LAG
whatever the names' lengths (tui.widgets.fit): the others give way first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.events import Resize
from textual.widgets import DataTable, Footer, Label

from engine.model import FailureGroup
from engine.service import Service, next_step
from engine.telemetry.snapshot import PolicyStats, Snapshot, Transfer
from tui import fmt
from tui.actions import bindings
from tui.screens.causes import CausesScreen, cause_key, cause_row
from tui.screens.failures import FailuresScreen
from tui.screens.form import say
from tui.screens.policy_actions import PolicyActions
from tui.view import View
from tui.widgets.fit import Spec, fit, natural
from tui.widgets.table import Cell, LiveTable, plain
from tui.widgets.trend import Series, Trend

STATE_STYLE = {
    "active": "success",
    "paused": "warning",
    "disabled": "dim",
    "stopped": "dim",
    "waiting": "error",
    "throttled": "warning",
}
# What stays at 80 columns: ID (and a long STATE) cut with an ellipsis before a number goes;
# the others leave in this order when they do not fit (the source first, RATE last).
POLICY_COLUMNS = (
    Spec("id", "ID", keep=True, shrink_to=10),
    Spec("source", "SOURCE", shrink_to=12, give_way=6),
    Spec("target", "TARGET", shrink_to=12, give_way=4),
    Spec("state", "STATE", keep=True, shrink_to=24),  # a hold reason reads whole
    Spec("pending", "PENDING", keep=True),
    Spec("in_flight", "IN-FLT", give_way=2),
    Spec("retrying", "RETRY", give_way=3),
    Spec("failed", "FAILED", keep=True),
    Spec("lag", "LAG", keep=True),
    Spec("rate", "RATE", give_way=1),
    Spec("limit", "LIMIT", give_way=5),
)
FRAME = 4  # the panel's border and the table's vertical scrollbar
# The in-flight pane is half the screen: the key gives up its middle before the bar goes.
TRANSFER_COLUMNS = (
    Spec("key", "KEY", keep=True, shrink_to=24),
    Spec("size", "SIZE", keep=True),
    Spec("progress", "PROGRESS", give_way=1),
    Spec("speed", "SPEED", give_way=2),
    Spec("attempt", "TRY", give_way=3),
)
# The failures pane is the other half: the cause and its count stay, the policy is cut.
CAUSE_COLUMNS = (
    Spec("code", "CAUSE", keep=True, shrink_to=12),
    Spec("op", "OP", give_way=2),
    Spec("policy", "POLICY", keep=True, shrink_to=8),
    Spec("count", "TASKS", keep=True),
    Spec("first", "FIRST", give_way=1),
)
FITTED = {"transfers": TRANSFER_COLUMNS, "recent": CAUSE_COLUMNS}
SCROLLBAR = 2  # a half-screen table's own vertical scrollbar


@dataclass(frozen=True)
class Fetched:
    """What the dashboard reads beside the snapshot."""

    causes: list[FailureGroup]
    aliases: int | None  # counted only while there is no policy: the first-run hint needs it


def policy_state(p: PolicyStats, snapshot: Snapshot) -> str:
    """Why dispatch is held, in the engine's words ('waiting: dst offline 2m', 'paused',
    'throttled'); 'waiting' from the links when the engine does not say."""
    if p.state == "disabled":
        return p.state
    if not snapshot.engine.running:
        return "stopped"
    if p.hold:
        return p.hold
    if p.state != "enabled":
        return p.state
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
        (state, STATE_STYLE.get(state.split(":")[0], "")),
        fmt.count(b.pending),
        fmt.count(b.in_flight),
        fmt.count(b.retrying),
        (fmt.count(b.failed), "error" if b.failed else ""),
        fmt.duration(b.oldest_pending_age) if b.pending else "-",
        rate,
        f"{fmt.size(p.bandwidth_limit)}/s" if p.bandwidth_limit else "-",
    ]


def in_flight_title(snapshot: Snapshot) -> str:
    """The pane's count, squared with the IN-FLT column, which counts every task taken from
    the queue: also one waiting behind its key's running copy (a key written twice in a
    row), one claimed a moment ago, and one whose copy ended between the two reads."""
    copying = len(snapshot.transfers)
    taken = sum(p.backlog.in_flight for p in snapshot.policies)
    if taken <= copying:
        return f"In flight ({copying})"
    return f"In flight ({fmt.count(taken)}: {fmt.count(copying)} copying, {fmt.count(taken - copying)} waiting)"


def transfer_row(t: Transfer) -> list[Cell]:
    return [
        f"{t.policy}: {t.key}",
        fmt.size(t.size),
        fmt.bar(t.bytes_done, t.size, 8),
        fmt.rate(t.speed),
        str(t.attempt),
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
        self.causes: dict[str, FailureGroup] = {}  # the causes shown, by row key
        self.policy_rows: list[tuple[str, list[Cell]]] = []
        self.width = 0  # the policies table's, as the last resize left it
        self.uncut: dict[str, list[tuple[str, list[Cell]]]] = {}  # per table, for a refit

    def compose(self) -> ComposeResult:
        yield from self.header()
        with Vertical(id="policies-panel", classes="panel") as panel:
            panel.border_title = "Policies"
            yield Label("", id="first-run")
            yield LiveTable([(c.key, c.label) for c in POLICY_COLUMNS], cap=200, id="policies")
        with Horizontal(id="trends"):
            yield Trend("Throughput", 0, fmt.rate, classes="panel")
            yield Trend("Backlog", 1, fmt.count, classes="panel")
            yield Trend("Lag", 2, fmt.duration, classes="panel")
        with Horizontal(id="bottom"):
            with Vertical(id="transfers-panel", classes="panel") as transfers:
                transfers.border_title = "In flight"
                yield LiveTable(
                    [(c.key, c.label) for c in TRANSFER_COLUMNS], cap=100, id="transfers"
                )
            with Vertical(id="failures-panel", classes="panel") as failures:
                failures.border_title = "Failures by cause"
                yield LiveTable([(c.key, c.label) for c in CAUSE_COLUMNS], cap=100, id="recent")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#policies", LiveTable).focus()

    def on_resize(self, event: Resize) -> None:
        # At 80x24 the trends and the failures pane fold away; policies and header stay.
        narrow = event.size.width < 100 or event.size.height < 30
        self.set_class(narrow, "narrow")
        self.width = event.size.width - FRAME
        self.shape_policies()
        self.call_after_refresh(self.refit)  # once the panes have their new width

    def shape_policies(self) -> None:
        """The columns that fit this width with these rows' widths (cheap: no redraw
        unless the answer changes)."""
        shaped = fit(
            POLICY_COLUMNS, [[plain(c) for c in r] for _, r in self.policy_rows], self.width
        )
        self.query_one("#policies", LiveTable).shape(shaped.hidden, shaped.widths)

    async def fetch(self, source: Service) -> Fetched:
        causes = await source.failure_groups()
        last = self.host.view.snapshot
        aliases = len(await source.aliases()) if last is None or not last.policies else None
        return Fetched(causes, aliases)

    def watch_view(self, view: View) -> None:
        """Before the first snapshot, the empty table says what is starting."""
        if view.snapshot is None:
            with contextlib.suppress(NoMatches):  # handed a view before it has composed
                say(
                    self.query_one("#first-run", Label),
                    f"{view.starting}…" if view.starting else "",
                )

    def render_view(self, view: View, extra: Fetched) -> Iterator[None]:
        """The policies first (what an operator came for), then the trends, the transfers
        and the causes, with a chance for a key between each (tui.app.Console.paint)."""
        snapshot = view.snapshot
        if snapshot is None:
            return
        hint = next_step(extra.aliases, 0) if extra.aliases is not None else None
        say(self.query_one("#first-run", Label), hint if not snapshot.policies and hint else "")
        now = self.host.clock()
        if not self._seeded:
            self.series.seed(view.history)
            self._seeded = True
        self.series.sample(snapshot, now)  # every snapshot counts, shown or frozen
        if not view.frozen:
            self.policy_rows = [(p.id, policy_row(p, snapshot)) for p in snapshot.policies]
            self.shape_policies()
            yield from self.query_one("#policies", LiveTable).sync_steps(self.policy_rows)
        yield
        for trend in self.query(Trend):
            trend.update(self.series)
        if view.frozen:
            return
        yield
        transfers = sorted(snapshot.transfers, key=lambda t: t.started_at)
        yield from self.sync_fitted(
            "transfers", [(str(t.task_id), transfer_row(t)) for t in transfers]
        )
        self.query_one("#transfers-panel").border_title = in_flight_title(snapshot)
        yield
        self.causes = {cause_key(g.cause): g for g in extra.causes}
        yield from self.sync_fitted(
            "recent", [(cause_key(g.cause), cause_row(g)) for g in extra.causes]
        )
        total = sum(p.backlog.failed + p.backlog.retrying for p in snapshot.policies)
        self.query_one(
            "#failures-panel"
        ).border_title = f"Failures by cause ({fmt.count(total)} failed or retrying)"

    def refit(self) -> None:
        for table_id, rows in list(self.uncut.items()):
            for _ in self.sync_fitted(table_id, rows):
                pass

    def sync_fitted(self, table_id: str, rows: list[tuple[str, list[Cell]]]) -> Iterator[None]:
        """A half-screen table's columns that fit its pane as laid out now; a long cell cut
        in the middle (a key's prefix and file name both stay readable), not at its end."""
        self.uncut[table_id] = rows
        specs = FITTED[table_id]
        table = self.query_one(f"#{table_id}", LiveTable)
        if not table.size.width:  # not laid out yet: the refit after the resize shapes it
            yield from table.sync_steps(rows)
            return
        plain_rows = [[plain(c) for c in r] for _, r in rows]
        shaped = fit(specs, plain_rows, table.size.width - SCROLLBAR)
        # Every column at the width these rows need: a DataTable column never narrows by
        # itself, so one wide cell seen a minute ago would push the last column off the pane.
        want = natural(specs, plain_rows)
        shown = [c.key for c in specs if c.key not in shaped.hidden]
        table.shape(shaped.hidden, {k: shaped.widths.get(k, want[k]) for k in shown})
        cuts = {n: shaped.widths[c.key] for n, c in enumerate(specs) if c.key in shaped.widths}
        if cuts:
            rows = [
                (k, [_cut(c, cuts[n]) if n in cuts else c for n, c in enumerate(r)])
                for k, r in rows
            ]
        yield from table.sync_steps(rows)

    # -- actions on the selected row -------------------------------------------------

    def selected_cause(self) -> FailureGroup | None:
        """The cause under the cursor, only while that panel has the focus (and shows)."""
        table = self.query_one("#recent", LiveTable)
        key = table.selected_key if table.has_focus else None
        return self.causes.get(key) if key else None

    def action_retry(self) -> None:
        cause = self.selected_cause()
        self.notify(
            "Enter opens the cause's tasks: r there retries one (or the marked ones)"
            if cause
            else "Open the failures with F (or Enter on a cause) and pick one",
            severity="warning",
        )

    @on(DataTable.RowSelected)
    def action_details(self) -> None:
        focused = self.focused
        if focused is not None and focused.id == "recent":
            cause = self.selected_cause()
            if cause is not None:
                self.app.push_screen(FailuresScreen(policy=cause.cause.policy, cause=cause.cause))
        elif focused is not None and focused.id == "policies":
            self.app.push_screen(CausesScreen(policy=self.selected_policy_id()))

    def action_copy(self) -> None:
        cause = self.selected_cause()
        if cause is not None:
            self.app.copy_to_clipboard(f"{cause.example_key}\t{cause.example_error}")
            self.notify(f"Copied an example of {cause.cause.code}: {cause.example_key!r}")

    def suggested_source(self) -> str | None:
        """`w` starts from the selected policy's source."""
        policy_id = self.query_one("#policies", LiveTable).selected_key
        snapshot = self.host.view.snapshot
        found = snapshot.policy(policy_id) if snapshot and policy_id else None
        return found.source if found else super().suggested_source()


def _cut(cell: Cell, width: int) -> Cell:
    """The cell cut in its middle to `width`, keeping its tone."""
    if isinstance(cell, str):
        return fmt.middle(plain(cell), width)
    return (fmt.middle(plain(cell), width), cell[1])
