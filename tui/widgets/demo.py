"""The demo bar: which fault is on the link and since when, the write rate, the events mode.

Shown under the status strip on a demo's console only. It is handed the view like
the status strip (the app fetches the demo's state in the same poll as the
snapshot), so it never calls the demo itself and never waits.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from engine.demo.control import DemoState
from engine.telemetry.snapshot import Snapshot
from tui import fmt
from tui.actions import ACTIONS, DEMO_KEYS, key_label
from tui.view import View

EVENTS_ON = "events: on — lag ≈ sub-second"
SCAN_ONLY = "scan-only — lag ≈ scan interval"


Part = tuple[str, str]  # text, style
SEPARATOR: Part = (" │ ", "dim")


def demo_line(
    state: DemoState | None, snapshot: Snapshot | None, now: float, width: int = 200
) -> Content:
    """One line that fits `width`: what matters most stays when the terminal is narrow
    (first the counts go, then the fault's clock time, keeping how long it has lasted).

    The fault's colour says how bad it is; its words say it without colour too."""
    tag: list[Part] = [(" DEMO ", "bold reverse $accent"), (" ", "")]
    if state is None:
        return Content.assemble(*tag, ("starting…", "dim"))
    rate: list[Part] = [(f"{state.rate:g} ops/s", "")]
    events: list[Part] = [(EVENTS_ON, "$success") if state.events else (SCAN_ONLY, "$warning")]
    replicated = sum(p.backlog.replicated for p in snapshot.policies) if snapshot else 0
    counts: list[Part] = [(f"ops {fmt.count(state.ops)}  replicated {fmt.count(replicated)}", "")]
    if state.errors:
        counts.append((f"  {fmt.count(state.errors)} write errors", "$error"))
    full, short = link_parts(state, now, clock=True), link_parts(state, now, clock=False)
    for groups in ([full, rate, events, counts], [full, rate, events], [short, rate, events]):
        line = assemble(tag, groups)
        if line.cell_length <= width:
            return line
    return assemble(tag, [short])


def link_parts(state: DemoState, now: float, clock: bool) -> list[Part]:
    if state.fault_since is None:
        return [("link ", ""), ("● healthy", "$success")]
    fault = "CUT" if state.fault == "cut" else state.fault  # as loud as OFFLINE above it
    tone = "bold $error" if state.fault == "cut" else "bold $warning"
    lasted = fmt.duration(now - state.fault_since)
    since = f"since {fmt.clock(state.fault_since)} ({lasted})" if clock else lasted
    return [("link ", ""), (f"● {fault} {since}", tone)]


def assemble(tag: list[Part], groups: list[list[Part]]) -> Content:
    parts = list(tag)
    for n, group in enumerate(groups):
        if n:
            parts.append(SEPARATOR)
        parts.extend(group)
    return Content.assemble(*parts)


def keys_line() -> Content:
    """The demo's keys, from the table that binds them."""
    parts: list[tuple[str, str]] = [(" ", "")]
    for name in DEMO_KEYS:
        action = ACTIONS[name]
        parts.append((key_label(action), "bold $accent"))
        parts.append((f" {action.label.lower()}  ", "dim"))
    return Content.assemble(*parts)


class DemoBar(Widget):
    """Two lines: the demo's state, and its keys. Ticks with the clock between polls."""

    view: reactive[View] = reactive(View, always_update=True)

    def __init__(self, *, clock: Callable[[], float], id: str | None = None) -> None:
        super().__init__(id=id)
        self.clock = clock

    def on_mount(self) -> None:
        self.set_interval(0.5, self.refresh)

    def render(self) -> Content:
        view = self.view
        state = demo_line(view.demo, view.snapshot, self.clock(), self.size.width)
        return Content("\n").join([state, keys_line()])
