"""The header strip: is the engine running, are the links up, and how fresh is this?"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.content import Content
from textual.widgets import Static

from engine.telemetry.snapshot import Snapshot
from tui import fmt

if TYPE_CHECKING:
    from tui.app import Console


def status_line(
    snapshot: Snapshot | None,
    *,
    now: float,
    received_at: float,
    refresh: float,
    error: str,
    frozen: bool,
    where: str,
) -> Content:
    """One line; every state is a word next to its colour, so it reads without colour too."""
    parts: list[tuple[str, str]] = [(" mirrorline ", "bold")]
    if snapshot is None:
        parts.append(("● unreachable " if error else "● connecting… ", "$warning"))
    elif not snapshot.engine.running:
        parts.append(("● stopped ", "$error"))
    elif snapshot.engine.paused:
        parts.append(("● PAUSED ", "bold $warning"))
    else:
        parts.append(("● running ", "$success"))
    if snapshot and snapshot.engine.started_at and snapshot.engine.running:
        parts.append((f"up {fmt.duration(now - snapshot.engine.started_at)}  ", "dim"))
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
        parts.append((f"{error}  ", "$error"))
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


class StatusBar(Static):
    """Redrawn twice a second, so the staleness clock ticks between refreshes."""

    def show(self, console: Console) -> None:
        view = console.view
        self.update(
            status_line(
                view.snapshot,
                now=console.clock(),
                received_at=view.received_at,
                refresh=console.refresh_every,
                error=view.error,
                frozen=view.frozen,
                where=console.where,
            )
        )
