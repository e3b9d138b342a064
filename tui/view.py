"""What the app knows (`View`) and what screens and widgets may use of the app (`Host`).

Screens and widgets never import the app: they read a `View` handed down to
them, see the app only through `Host`, and ask for changes by posting messages
(`tui.messages`). So the app can import every screen at the top of its module,
and a screen can be driven in a test by any object that has these attributes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from engine.demo.control import DemoControl, DemoState
from engine.service import Service
from engine.telemetry.snapshot import HistoryPoint, Snapshot


@dataclass(frozen=True)
class View:
    """The latest snapshot and how fresh it is; the app replaces it, never edits it."""

    snapshot: Snapshot | None = None
    received_at: float = 0.0  # our clock when it arrived
    error: str = ""  # the source's last failure, shown until a poll succeeds
    frozen: bool = False  # the display holds still; the engine and the polls go on
    history: list[HistoryPoint] = field(default_factory=list)  # seeds the sparklines
    starting: str = ""  # what is being started, while the engine (or the demo) comes up
    demo: DemoState | None = None  # the demo's faults and traffic, on a demo's console


class Host(Protocol):
    """The app as screens see it: read-only settings, the latest view, and the service.

    The service is here for reads a screen makes on its own (an audit page, a
    task's attempts, an export); changes to the engine go up as requests.
    """

    @property
    def source(self) -> Service: ...

    @property
    def view(self) -> View: ...

    @property
    def read_only(self) -> bool: ...

    @property
    def refresh_every(self) -> float: ...

    @property
    def where(self) -> str: ...  # "engine on DIR" or the remote URL, for the header

    @property
    def clock(self) -> Callable[[], float]: ...

    @property
    def demo(self) -> DemoControl | None: ...  # the source, when it is a demo
