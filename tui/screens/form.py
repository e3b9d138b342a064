"""What the console's forms share: named fields, each checked as you type by a CLI rule.

A rule is the CLI's own parse function turned into "" (passes) or the reason it
fails, in the CLI's wording; so a field a form accepts is one the matching
command accepts. What only the engine can know comes back on submit and is
shown under the form; nothing is saved until it all passes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.content import Content
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Input, Label

from engine.errors import MirrorlineError
from engine.printable import printable
from tui.screens import ConsoleModal

FieldRule = Callable[[str], str]


def check(parse: Callable[[str], object], optional: bool = True) -> FieldRule:
    """A field rule from a parse function that raises a MirrorlineError on bad input."""

    def rule(value: str) -> str:
        if optional and not value.strip():
            return ""
        try:
            parse(value)
        except MirrorlineError as exc:
            return exc.reason
        return ""

    return rule


def say(label: Label, message: str) -> None:
    """An error line takes a row only while it has something to say (80x24 is tight)."""
    label.update(Content(printable(message)))  # the engine's words may quote a server's
    label.display = bool(message)


class Rule(Validator):
    """A field rule as a Textual validator: the Input marks itself invalid."""

    def __init__(self, rule: FieldRule) -> None:
        super().__init__()
        self.rule = rule

    def validate(self, value: str) -> ValidationResult:
        reason = self.rule(value)
        return self.failure(reason) if reason else self.success()


class Form(ConsoleModal[None]):
    """A dialog of fields named by `RULES`; subclasses compose them and implement submit."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "submit", "Save"),
    ]
    RULES: ClassVar[dict[str, FieldRule]] = {}

    def field(self, name: str, hint: str, label: str = "", password: bool = False) -> ComposeResult:
        with Horizontal(classes="field"):
            yield Label(label or name, classes="name")
            yield Input(
                placeholder=hint,
                id=name,
                password=password,
                validators=[Rule(self.RULES[name])],
                validate_on=["changed", "submitted"],
            )
        yield Label("", id=f"{name}-error", classes="field-error")

    def buttons(self) -> ComposeResult:
        yield Label("", id="form-error", classes="field-error")
        with Horizontal(classes="buttons"):
            yield Button("Save (ctrl+s)", variant="primary", id="save")
            yield Button("Cancel (esc)", id="cancel")

    def value(self, name: str) -> str:
        return self.query_one(f"#{name}", Input).value

    @on(Input.Changed)
    def validate_field(self, event: Input.Changed) -> None:
        result = event.validation_result
        reason = result.failure_descriptions[0] if result and not result.is_valid else ""
        say(self.query_one(f"#{event.input.id}-error", Label), reason)

    def show_error(self, name: str, reason: str) -> None:
        say(self.query_one(f"#{name}-error", Label), reason)
        self.query_one(f"#{name}", Input).set_class(bool(reason), "-invalid")

    def form_error(self, message: str) -> None:
        say(self.query_one("#form-error", Label), message)

    def errors(self, names: Iterable[str]) -> dict[str, str]:
        """Every named field checked again, its error shown; the ones that fail."""
        found = {}
        for name in names:
            reason = self.RULES[name](self.value(name))
            self.show_error(name, reason)
            if reason:
                found[name] = reason
        return found

    def action_submit(self) -> None:
        raise NotImplementedError

    @on(Button.Pressed, "#save")
    def save_pressed(self) -> None:
        self.action_submit()

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
