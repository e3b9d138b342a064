"""Add an endpoint (an alias): what `mirrorline alias set` does, from the console.

The name and URL are checked as you type with the CLI's own rules; on submit the
engine checks that the endpoint answers and takes the keys before anything is
saved. The secret key is masked as it is typed and is never shown again: the
engine keeps it in its 0600 aliases file and lists only a masked form.
"""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Label

from engine.aliases import Alias, validate_name, validate_url
from engine.errors import MirrorlineError
from engine.service import AliasWriter
from tui.messages import RefreshRequested
from tui.screens.form import FieldRule, Form, check


def required(what: str) -> FieldRule:
    return lambda value: "" if value else f"the {what} must not be empty"


RULES: dict[str, FieldRule] = {
    "name": check(lambda v: validate_name(v.strip()), optional=False),
    "url": check(lambda v: validate_url(v.strip()), optional=False),
    "access_key": required("access key"),
    "secret_key": required("secret key"),
}


class AliasForm(Form):
    RULES = RULES

    def __init__(self, writer: AliasWriter) -> None:
        super().__init__()
        self.writer = writer

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog form"):
            yield Label("Add an endpoint (an S3 alias)", classes="title")
            yield from self.field("name", "what policies call it, e.g. prod (ALIAS/BUCKET)")
            yield from self.field("url", "http(s)://host:port")
            yield from self.field("access_key", "the access key", label="access key")
            yield from self.field("secret_key", "masked as you type", "secret key", password=True)
            yield Label(
                "Saving checks that the endpoint answers and takes these keys.", classes="hint"
            )
            yield from self.buttons()

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    def alias(self) -> Alias:
        return Alias(
            name=validate_name(self.value("name").strip()),
            url=validate_url(self.value("url").strip()),
            access_key=self.value("access_key"),
            secret_key=self.value("secret_key"),
        )

    def action_submit(self) -> None:
        if self.errors(RULES):
            self.form_error("fix the fields marked above")
            return
        self.form_error("checking the endpoint…")
        self.save(self.alias())

    @work(exclusive=True, group="save")
    async def save(self, alias: Alias) -> None:
        try:
            known = {entry["name"] for entry in await self.host.source.aliases()}
            await self.writer.set_alias(alias, check=True)
        except MirrorlineError as exc:
            self.form_error(exc.reason)
            return
        verb = "replaced" if alias.name in known else "added"
        self.app.notify(
            f"Endpoint {alias.name} {verb} ({alias.url}): policies name it {alias.name}/BUCKET"
        )
        self.post_message(RefreshRequested())
        self.dismiss(None)
