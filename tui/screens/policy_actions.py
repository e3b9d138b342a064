"""Keys that act on the selected policy, and retry-all, for the screens that list policies.

Each key posts a request (tui.messages) for the app to run; the ones that
cannot be undone ask first.
"""

from __future__ import annotations

from typing import Any, TypeVar

from engine.telemetry.snapshot import PolicyStats
from tui.messages import (
    DeleteRequested,
    EnableRequested,
    EngineRequest,
    PauseRequested,
    ResyncRequested,
    RetryRequested,
)
from tui.screens import ConsoleScreen
from tui.screens.confirm import Confirm
from tui.screens.policy_form import PolicyForm
from tui.widgets.table import LiveTable

T = TypeVar("T")


class PolicyActions(ConsoleScreen[T]):
    """A screen with a `#policies` LiveTable whose selected row these keys act on."""

    def selected_policy_id(self) -> str | None:
        return self.query_one("#policies", LiveTable).selected_key

    def selected_policy(self) -> PolicyStats | None:
        snapshot = self.host.view.snapshot
        policy_id = self.selected_policy_id()
        if snapshot is None or policy_id is None:
            self.notify("No policy selected", severity="warning")
            return None
        return snapshot.policy(policy_id)

    def action_pause_policy(self) -> None:
        if p := self.selected_policy():
            # its own flag: the engine's pause shows as paused too
            self.post_message(PauseRequested(paused=not p.paused, policy=p.id))

    def action_toggle_policy(self) -> None:
        if p := self.selected_policy():
            self.post_message(EnableRequested(policy=p.id, enabled=p.state == "disabled"))

    def action_edit_policy(self) -> None:
        if p := self.selected_policy():
            self.app.push_screen(PolicyForm(self.host.source, editing=p.id))

    def action_delete_policy(self) -> None:
        if p := self.selected_policy():
            queued = p.backlog.pending + p.backlog.failed + p.backlog.retrying
            question = (
                f"Delete policy {p.id} ({p.source} -> {p.target})?\n"
                f"Its {queued:,} queued tasks go with it; objects already copied stay on the "
                "target."
            )
            ask(self, question, "Delete", DeleteRequested(policy=p.id))

    def action_resync(self) -> None:
        if p := self.selected_policy():
            question = (
                f"Resync policy {p.id}?\nThe whole source bucket {p.source} is walked and "
                "everything that differs on the target is queued again."
            )
            ask(self, question, "Resync", ResyncRequested(policy=p.id))

    def action_retry_all(self) -> None:
        confirm_retry_all(self, None)


def ask(screen: ConsoleScreen[Any], question: str, yes: str, request: EngineRequest) -> None:
    """Post `request` from `screen` once the operator says yes."""

    def answered(answer: bool | None) -> None:
        if answer:
            screen.post_message(request)

    screen.app.push_screen(Confirm(question, yes), answered)


def confirm_retry_all(screen: ConsoleScreen[Any], policy: str | None) -> None:
    """R: every failed and retrying task (of one policy, or all), after a yes."""
    snapshot = screen.host.view.snapshot
    count = sum(
        p.backlog.failed + p.backlog.retrying
        for p in (snapshot.policies if snapshot else [])
        if policy in (None, p.id)
    )
    if not count:
        screen.notify("Nothing has failed", severity="information")
        return
    scope = f" of policy {policy}" if policy else ""
    question = f"Retry all {count:,} failed or retrying task(s){scope}?"
    ask(screen, question, "Retry all", RetryRequested(policy=policy))
