"""Add or edit a policy: each field checked as you type, the whole checked again on submit.

The checks as you type are the CLI's own parse functions (tui.screens.form), so a
field the form accepts is one `mirrorline replicate add` accepts. What only the
engine can know (the alias exists, both buckets exist and are versioned) comes
back from the source on submit and is shown under the form.
"""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.widgets import Checkbox, Input, Label

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
from tui.screens.form import FieldRule, Form, check

RULES: dict[str, FieldRule] = {
    "source": check(lambda v: parse_path(v, "source"), optional=False),
    "target": check(lambda v: parse_path(v, "target"), optional=False),
    "prefix": check(parse_prefix),
    "tags": check(parse_tags),
    "bandwidth": check(parse_bandwidth),
    "id": check(parse_id),
}
HINTS = {
    "source": "ALIAS/BUCKET to copy from",
    "target": "ALIAS/BUCKET to copy to",
    "prefix": "only keys starting with this (optional)",
    "tags": "only objects tagged k=v&k2=v2 (optional)",
    "bandwidth": "limit, e.g. 50MiB (optional)",
    "id": "policy id (optional: generated)",
}


class PolicyForm(Form):
    RULES = RULES

    def __init__(self, source: Service, editing: str | None = None) -> None:
        super().__init__()
        self.source = source
        self.editing = editing

    def fields(self) -> list[str]:
        """The id is set when a policy is added; an edit keeps it."""
        return [name for name in HINTS if name != "id" or not self.editing]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog form"):
            title = f"Edit policy {self.editing}" if self.editing else "Add a replication policy"
            yield Label(title, classes="title")
            with VerticalScroll():
                for name in self.fields():
                    yield from self.field(name, HINTS[name])
                with Horizontal(classes="field"):
                    yield Label("replicate", classes="name")
                    with Grid(classes="ops"):  # two a row: four in one are cut at 80 columns
                        for op in OPERATIONS:
                            yield Checkbox(op, True, id=f"op-{op}")
            yield from self.buttons()

    def on_mount(self) -> None:
        self.query_one("#source", Input).focus()
        if self.editing:
            self.load()

    @work(exclusive=True)
    async def load(self) -> None:
        try:
            policy = next(p for p in await self.source.policies() if p.id == self.editing)
        except (MirrorlineError, StopIteration):
            self.form_error("this policy is gone")
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

    def spec(self) -> PolicySpec:
        value = {name: self.value(name).strip() for name in self.fields()}
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

    def action_submit(self) -> None:
        if self.errors(self.fields()):
            self.form_error("fix the fields marked above")
            return
        self.form_error("checking the endpoints…")
        self.save(self.spec())

    @work(exclusive=True, group="save")
    async def save(self, spec: PolicySpec) -> None:
        try:
            if self.editing:
                policy = await self.source.update_policy(self.editing, spec)
            else:
                policy = await self.source.add_policy(spec)
        except MirrorlineError as exc:
            self.form_error(exc.reason)
            return
        verb = "updated" if self.editing else "added: it starts replicating now"
        self.app.notify(f"Policy {policy.id} {verb}")
        self.post_message(RefreshRequested())  # handled before it closes
        self.dismiss(None)
