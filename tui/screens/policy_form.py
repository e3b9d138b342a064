"""Add or edit a policy: each field checked as you type, the whole checked again on submit.

The checks as you type are the CLI's own parse functions, so a field the form
accepts is one `mirrorline replicate add` accepts. What only the engine can
know (the alias exists, both buckets exist and are versioned) comes back from
the source on submit and is shown under the form; nothing is saved until it
all passes.
"""

from __future__ import annotations

from collections.abc import Callable

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Checkbox, Input, Label

from engine.errors import MirrorlineError
from engine.policy import (
    OPERATIONS,
    Policy,
    format_tags,
    parse_bandwidth,
    parse_id,
    parse_path,
    parse_prefix,
    parse_tags,
)
from engine.service import PolicySpec, Service
from tui.messages import RefreshRequested
from tui.screens import ConsoleModal


def _check(parse: Callable[[str], object], optional: bool = True) -> Callable[[str], str]:
    """A field rule: '' when the value passes, else the reason (the CLI's wording)."""

    def rule(value: str) -> str:
        if optional and not value.strip():
            return ""
        try:
            parse(value)
        except MirrorlineError as exc:
            return exc.reason
        return ""

    return rule


RULES: dict[str, Callable[[str], str]] = {
    "source": _check(lambda v: parse_path(v, "source"), optional=False),
    "target": _check(lambda v: parse_path(v, "target"), optional=False),
    "prefix": _check(parse_prefix),
    "tags": _check(parse_tags),
    "bandwidth": _check(parse_bandwidth),
    "id": _check(parse_id),
}
HINTS = {
    "source": "ALIAS/BUCKET to copy from",
    "target": "ALIAS/BUCKET to copy to",
    "prefix": "only keys starting with this (optional)",
    "tags": "only objects tagged k=v&k2=v2 (optional)",
    "bandwidth": "limit, e.g. 50MiB (optional)",
    "id": "policy id (optional: generated)",
}


def say(label: Label, message: str) -> None:
    """An error line takes a row only while it has something to say (80x24 is tight)."""
    label.update(Content(message))
    label.display = bool(message)


class Rule(Validator):
    """A RULES entry as a Textual validator: the Input marks itself invalid."""

    def __init__(self, rule: Callable[[str], str]) -> None:
        super().__init__()
        self.rule = rule

    def validate(self, value: str) -> ValidationResult:
        reason = self.rule(value)
        return self.failure(reason) if reason else self.success()


class PolicyForm(ConsoleModal[None]):
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "submit", "Save"),
    ]

    def __init__(self, source: Service, editing: str | None = None) -> None:
        super().__init__()
        self.source = source
        self.editing = editing

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog form"):
            title = f"Edit policy {self.editing}" if self.editing else "Add a replication policy"
            yield Label(title, classes="title")
            with VerticalScroll():
                for name, hint in HINTS.items():
                    if name == "id" and self.editing:
                        continue
                    with Horizontal(classes="field"):
                        yield Label(name, classes="name")
                        yield Input(
                            placeholder=hint,
                            id=name,
                            validators=[Rule(RULES[name])],
                            validate_on=["changed", "submitted"],
                        )
                    yield Label("", id=f"{name}-error", classes="field-error")
                with Horizontal(classes="field"):
                    yield Label("replicate", classes="name")
                    for op in OPERATIONS:
                        yield Checkbox(op, True, id=f"op-{op}")
            yield Label("", id="form-error", classes="field-error")
            with Horizontal(classes="buttons"):
                yield Button("Save (ctrl+s)", variant="primary", id="save")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#source", Input).focus()
        if self.editing:
            self.load()

    @work(exclusive=True)
    async def load(self) -> None:
        try:
            policy = next(p for p in await self.source.policies() if p.id == self.editing)
        except (MirrorlineError, StopIteration):
            say(self.query_one("#form-error", Label), "this policy is gone")
            return
        self.fill(policy)

    def fill(self, policy: Policy) -> None:
        values = {
            "source": policy.source,
            "target": policy.target,
            "prefix": policy.prefix,
            "tags": format_tags(policy.tags),
            "bandwidth": f"{policy.bandwidth}B" if policy.bandwidth else "",
        }
        for name, value in values.items():
            self.query_one(f"#{name}", Input).value = value
        for op in OPERATIONS:
            self.query_one(f"#op-{op}", Checkbox).value = policy.wants(op)

    @on(Input.Changed)
    def validate_field(self, event: Input.Changed) -> None:
        result = event.validation_result
        reason = result.failure_descriptions[0] if result and not result.is_valid else ""
        say(self.query_one(f"#{event.input.id}-error", Label), reason)

    def show_error(self, name: str, reason: str) -> None:
        say(self.query_one(f"#{name}-error", Label), reason)
        self.query_one(f"#{name}", Input).set_class(bool(reason), "-invalid")

    def errors(self) -> dict[str, str]:
        found = {}
        for name, rule in RULES.items():
            if name == "id" and self.editing:
                continue
            reason = rule(self.query_one(f"#{name}", Input).value)
            self.show_error(name, reason)
            if reason:
                found[name] = reason
        return found

    def spec(self) -> PolicySpec:
        value = {
            name: self.query_one(f"#{name}", Input).value.strip()
            for name in HINTS
            if name != "id" or not self.editing
        }
        ops = [op for op in OPERATIONS if self.query_one(f"#op-{op}", Checkbox).value]
        return PolicySpec(
            source=value["source"],
            target=value["target"],
            id=value.get("id") or None,
            prefix=value["prefix"],
            tags=value["tags"],
            replicate=",".join(ops),
            bandwidth=value["bandwidth"],
        )

    @on(Button.Pressed, "#save")
    def action_submit(self) -> None:
        if self.errors():
            say(self.query_one("#form-error", Label), "fix the fields marked above")
            return
        say(self.query_one("#form-error", Label), "checking the endpoints…")
        self.save(self.spec())

    @work(exclusive=True, group="save")
    async def save(self, spec: PolicySpec) -> None:
        try:
            if self.editing:
                policy = await self.source.update_policy(self.editing, spec)
            else:
                policy = await self.source.add_policy(spec)
        except MirrorlineError as exc:
            say(self.query_one("#form-error", Label), exc.reason)
            return
        verb = "updated" if self.editing else "added: it starts replicating now"
        self.app.notify(f"Policy {policy.id} {verb}")
        self.post_message(RefreshRequested())  # handled before it closes
        self.dismiss(None)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
