"""Actions on the selected policy, shared by the screens that list policies."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tui.screens.confirm import Confirm
from tui.widgets.table import LiveTable

if TYPE_CHECKING:
    from engine.telemetry.snapshot import PolicyStats
    from tui.app import Console


class PolicyActions:
    """Mixed into a screen that has a `#policies` LiveTable."""

    if TYPE_CHECKING:
        console: Console

        def query_one(self, selector: str, expect_type: type[LiveTable]) -> LiveTable: ...
        def notify(self, message: str, *, severity: str = ...) -> None: ...

    def selected_policy_id(self) -> str | None:
        return self.query_one("#policies", LiveTable).selected_key

    def selected_policy(self) -> PolicyStats | None:
        snapshot = self.console.view.snapshot
        policy_id = self.selected_policy_id()
        if snapshot is None or policy_id is None:
            self.notify("No policy selected", severity="warning")
            return None
        return snapshot.policy(policy_id)

    def action_pause_policy(self) -> None:
        p = self.selected_policy()
        if p is None:
            return
        pause = not p.paused  # its own flag: the engine's pause shows as paused too
        self.console.act(
            lambda: self.console.source.set_paused(pause, p.id),
            f"Policy {p.id} {'paused' if pause else 'resumed'}",
        )

    def action_toggle_policy(self) -> None:
        p = self.selected_policy()
        if p is None:
            return
        enable = p.state == "disabled"
        self.console.act(
            lambda: self.console.source.set_enabled(p.id, enable),
            f"Policy {p.id} {'enabled' if enable else 'disabled'}",
        )

    def action_edit_policy(self) -> None:
        p = self.selected_policy()
        if p is None:
            return
        from tui.screens.policy_form import PolicyForm

        self.console.push_screen(PolicyForm(self.console.source, editing=p.id))

    def action_delete_policy(self) -> None:
        p = self.selected_policy()
        if p is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.console.act(
                    lambda: self.console.source.remove_policy(p.id), f"Policy {p.id} deleted"
                )

        question = (
            f"Delete policy {p.id} ({p.source} -> {p.target})?\n"
            f"Its {p.backlog.pending + p.backlog.failed + p.backlog.retrying:,} queued tasks "
            "go with it; objects already copied stay on the target."
        )
        self.console.push_screen(Confirm(question, "Delete"), answered)

    def action_resync(self) -> None:
        p = self.selected_policy()
        if p is None:
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.console.act(
                    lambda: self.console.source.start_resync(p.id),
                    f"Resync of {p.id} started: every source object is compared with the target",
                )

        question = (
            f"Resync policy {p.id}?\nThe whole source bucket {p.source} is walked and "
            "everything that differs on the target is queued again."
        )
        self.console.push_screen(Confirm(question, "Resync"), answered)

    def action_retry_all(self) -> None:
        confirm_retry_all(self.console, None)


def confirm_retry_all(console: Console, policy: str | None) -> None:
    """R: every failed and retrying task (of one policy, or all), after a yes."""
    snapshot = console.view.snapshot
    count = sum(
        p.backlog.failed + p.backlog.retrying
        for p in (snapshot.policies if snapshot else [])
        if policy in (None, p.id)
    )
    if not count:
        console.notify("Nothing has failed", severity="information")
        return
    scope = f" of policy {policy}" if policy else ""

    def answered(yes: bool | None) -> None:
        if yes:
            console.act(
                lambda: console.source.retry(policy=policy),
                f"{count:,} failed or retrying task(s){scope} queued again",
            )

    console.push_screen(
        Confirm(f"Retry all {count:,} failed or retrying task(s){scope}?", "Retry all"), answered
    )
