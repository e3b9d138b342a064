"""A labelled sparkline over the last minutes, seeded from the engine's persisted history."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label, Sparkline

from engine.telemetry.snapshot import HistoryPoint, Snapshot

SLOT = 10.0  # the engine's history resolution; live samples are folded to it too
KEEP = 120  # slots (20 minutes)


class Series:
    """Totals across policies, one value per 10 s slot: history first, then live samples."""

    def __init__(self) -> None:
        self.slots: dict[float, tuple[float, float, float]] = {}  # at -> (bytes/s, backlog, lag)

    def seed(self, points: Iterable[HistoryPoint]) -> None:
        by_slot: dict[float, list[HistoryPoint]] = {}
        for p in points:
            by_slot.setdefault(p.at, []).append(p)
        for at, group in by_slot.items():
            self.slots[at] = (
                sum(p.bytes_rate for p in group),
                sum(p.pending + p.in_flight + p.retrying for p in group),
                max(p.lag for p in group),
            )
        self._trim()

    def sample(self, snapshot: Snapshot, now: float) -> None:
        policies = snapshot.policies
        self.slots[now - now % SLOT] = (
            sum(p.rate.current_bytes for p in policies),
            sum(p.backlog.pending + p.backlog.in_flight + p.backlog.retrying for p in policies),
            max((p.backlog.oldest_pending_age for p in policies), default=0.0),
        )
        self._trim()

    def _trim(self) -> None:
        for at in sorted(self.slots)[:-KEEP]:
            del self.slots[at]

    def values(self, index: int) -> list[float]:
        """Completed slots only: the bars change every 10 s, not on every refresh."""
        return [self.slots[at][index] for at in sorted(self.slots)[:-1]]

    def latest(self, index: int) -> float | None:
        return self.slots[max(self.slots)][index] if self.slots else None


class Trend(Vertical):
    def __init__(self, title: str, index: int, show: Callable[[float], str], **kw: str) -> None:
        super().__init__(**kw)
        self.border_title = title
        self.index = index
        self.show_value = show

    def compose(self) -> ComposeResult:
        spark = Sparkline([], summary_function=max)
        spark.visible = False  # no data yet
        yield spark
        yield Label("-", classes="trend-value")

    def update(self, series: Series) -> None:
        data: Sequence[float] = series.values(self.index)
        spark = self.query_one(Sparkline)
        # Textual draws no data as a baseline and one point as full blocks across the width,
        # which reads as "at maximum": until there are two points, draw nothing at all.
        spark.visible = len(data) > 1
        if spark.visible and spark.data != data:  # a redraw only when a 10 s slot completes
            spark.data = data
        latest = series.latest(self.index)
        self.query_one(Label).update(self.show_value(latest) if latest is not None else "-")
