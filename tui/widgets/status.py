"""The header strip: is the engine running, are the links up, and how fresh is this?"""

from __future__ import annotations

from collections.abc import Callable

from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from engine.printable import printable
from engine.telemetry.snapshot import Snapshot
from tui import fmt
from tui.view import View


def status_line(
    snapshot: Snapshot | None,
    *,
    now: float,
    received_at: float,
    refresh: float,
    error: str,
    frozen: bool,
    where: str,
    starting: str = "",
) -> Content:
    """One line; every state is a word next to its colour, so it reads without colour too."""
    parts: list[tuple[str, str]] = [(" mirrorline ", "bold")]
    if snapshot is None and starting:
        parts.append(("● starting… ", "$warning"))  # what starts: in the screen's body
    elif snapshot is None:
        parts.append(("● unreachable " if error else "● connecting… ", "$warning"))
    elif not snapshot.engine.running:
        parts.append(("● stopped ", "$error"))
    elif snapshot.engine.paused:
        parts.append(("● PAUSED ", "bold $warning"))
    else:
        parts.append(("● running ", "$success"))
    if snapshot and snapshot.engine.started_at and snapshot.engine.running:
        parts.append((f"up {fmt.duration(now - snapshot.engine.started_at)}  ", "dim"))
    if snapshot and snapshot.cluster:  # engines sharing one queue: how many are up
        up = snapshot.cluster.up
        parts.append((f"cluster: {up} node{'' if up == 1 else 's'}  ", "bold"))
    if snapshot and snapshot.engine.running and snapshot.engine.config_error:
        problem = snapshot.engine.config_error  # the engine's words: it keeps the last good one
        shown = problem if len(problem) <= 80 else problem[:79] + "…"
        parts.append((f"CONFIG ERROR (last good in use): {shown}  ", "bold $error"))
    if snapshot:
        targets = {p.target_alias for p in snapshot.policies}
        for link in snapshot.links:
            if link.alias not in targets and link.online is not False:
                continue  # sources are shown only when they are down
            parts.append((f"{link.alias} ", ""))
            if link.online is None:
                parts.append(("● unknown  ", "dim"))
            elif link.online:
                parts.append(("● online  ", "$success"))
            else:
                down = fmt.duration(link.downtime_current)
                total = fmt.duration(link.downtime_total)
                parts.append((f"● OFFLINE {down} (total {total})  ", "bold $error"))
    if frozen:
        parts.append((" FROZEN ", "reverse $warning"))
        parts.append(("  ", ""))
    if error:
        parts.append((f"{printable(error)}  ", "$error"))  # a server's words, escaped
    # The engine's own clock counts too: an engine whose snapshot stopped moving is stale
    # even while polls succeed.
    taken = snapshot.engine.updated_at if snapshot and snapshot.engine.running else None
    age = max(now - received_at, now - taken if taken else 0.0) if received_at else None
    stale = age is not None and age > 3 * refresh
    parts.append(
        (
            f"updated {fmt.duration(age)} ago" if age is not None else "no data yet",
            "bold $error" if stale else "dim",
        )
    )
    if where:
        parts.append((f"  {where}", "dim"))
    return Content.assemble(*parts)


class StatusBar(Widget):
    """Bound to its screen's view, and redrawn twice a second so the staleness clock ticks
    between polls. It is given what it shows; it never reads the app."""

    view: reactive[View] = reactive(View, always_update=True)

    def __init__(
        self, *, clock: Callable[[], float], refresh: float, where: str, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.clock = clock
        self.refresh_every = refresh
        self.where = where

    def on_mount(self) -> None:
        self.set_interval(0.5, self.refresh)

    def render(self) -> Content:
        view = self.view
        return status_line(
            view.snapshot,
            now=self.clock(),
            received_at=view.received_at,
            refresh=self.refresh_every,
            error=view.error,
            frozen=view.frozen,
            where=self.where,
            starting=view.starting,
        )
