"""Messages: polls report to the app, and screens ask the app for changes to the engine.

State flows down: the app keeps the one `View` and hands it to the screen on
top. Requests flow up: a screen posts what it wants changed, and the app, which
holds the service, runs it off the key handler and says how it went in a toast.
A request is the call and its wording in one object, so the app has a single
handler for every kind of change and no screen reaches through the app.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from textual.message import Message

from engine.demo.control import DemoAction, DemoControl, DemoState
from engine.errors import UserError
from engine.service import Service
from engine.telemetry.snapshot import Snapshot
from tui.screens import ConsoleScreen

T = TypeVar("T")


@dataclass
class SnapshotReceived(Message, Generic[T]):
    """A poll came back: the engine's snapshot, and what the screen on top fetched with it."""

    snapshot: Snapshot
    received_at: float  # the console's clock
    screen: ConsoleScreen[T] | None  # None when a modal was on top: nothing to render
    extra: T
    demo: DemoState | None = None  # fetched in the same poll, on a demo's console


@dataclass
class SourceFailed(Message):
    """A poll failed; the reason stays in the header until one succeeds."""

    reason: str


class RefreshRequested(Message):
    """Poll now, not at the next tick: a screen changed what it shows (a page, a filter)."""


@dataclass(kw_only=True)
class EngineRequest(Message):
    """A change to the engine. Subclasses make the call and word the toast."""

    then: Callable[[], None] | None = None  # run on success only: a refusal changes nothing

    async def send(self, service: Service) -> str:
        """Make the change; return what the operator is told."""
        raise NotImplementedError


@dataclass(kw_only=True)
class PauseRequested(EngineRequest):
    paused: bool
    policy: str | None = None  # None: the whole engine

    async def send(self, service: Service) -> str:
        await service.set_paused(self.paused, self.policy)
        if self.policy is not None:
            return f"Policy {self.policy} {'paused' if self.paused else 'resumed'}"
        return (
            "Engine paused: transfers stop, detection goes on" if self.paused else "Engine resumed"
        )


@dataclass(kw_only=True)
class EnableRequested(EngineRequest):
    policy: str
    enabled: bool

    async def send(self, service: Service) -> str:
        await service.set_enabled(self.policy, self.enabled)
        return f"Policy {self.policy} {'enabled' if self.enabled else 'disabled'}"


@dataclass(kw_only=True)
class DeleteRequested(EngineRequest):
    policy: str

    async def send(self, service: Service) -> str:
        await service.remove_policy(self.policy)
        return f"Policy {self.policy} deleted"


@dataclass(kw_only=True)
class ResyncRequested(EngineRequest):
    policy: str

    async def send(self, service: Service) -> str:
        await service.start_resync(self.policy)
        return f"Resync of {self.policy} started: every source object is compared with the target"


@dataclass(kw_only=True)
class RetryRequested(EngineRequest):
    """These tasks again; with no ids, every failed and retrying one (of `policy`, or all)."""

    ids: Sequence[int] = ()
    policy: str | None = None

    async def send(self, service: Service) -> str:
        count = await service.retry(self.ids, self.policy)
        if len(self.ids) == 1:
            return f"Task {self.ids[0]} queued again"
        if self.ids:
            return f"{len(self.ids)} task(s) queued again"
        scope = f" of policy {self.policy}" if self.policy else ""
        return f"{count:,} failed or retrying task(s){scope} queued again"


@dataclass(kw_only=True)
class DemoRequested(EngineRequest):
    """A demo key: a fault on the link, the write rate, or the events toggle."""

    action: DemoAction

    async def send(self, service: Service) -> str:
        if not isinstance(service, DemoControl):
            raise UserError("the demo keys work in `mirrorline demo` only")
        return demo_said(self.action, await service.demo_act(self.action))


def demo_said(action: DemoAction, state: DemoState) -> str:
    """The toast for a demo key, from the state the demo reports after it."""
    if action is DemoAction.HEAL:
        return "Link healed: every fault off"
    if action is DemoAction.CUT:
        return "Link cut: the engine sees the target offline and holds its queue (H heals)"
    if action in (DemoAction.LATENCY, DemoAction.THROTTLE, DemoAction.RESETS):
        return f"Fault on the link: {state.fault} (H heals)"
    if action is DemoAction.EVENTS:
        if state.events:
            return "Events on: each write is posted to the engine's webhook; lag ≈ sub-second"
        return "Events off: the engine finds writes by scanning; lag ≈ the scan interval"
    return f"Write rate: {state.rate:g} operations per second"
