"""One object's whole story: why it is, or is not, on the target, and what to do about it.

The engine's `explain` answers (the same text `mirrorline replicate explain`
prints): the verdict first, then the policies that cover the key, the versions
on both sides, the replica map, the tasks with their attempts, the links. From
here `r` retries the object's parked tasks and `c` copies the text, so an
operator can paste the evidence into a ticket. `w` asks for any key by name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Group
from rich.padding import Padding
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Input, Label, Static

from engine.checks.explanation import TaskRow, task_lines
from engine.errors import MirrorlineError
from engine.model import Task, TaskState
from engine.printable import printable
from tui.messages import RetryRequested
from tui.screens import ConsoleModal
from tui.screens.form import say

if TYPE_CHECKING:
    from engine.checks.explanation import Explanation

VERDICT_TONE = {
    "in sync": "-success",
    "pending": "-warning",
    "waiting": "-warning",
    "missing": "-warning",
    "failed": "-error",
}
PARKED = {TaskState.FAILED.value, TaskState.RETRYING.value}
STORY_EVERY = 2.0  # seconds between two tellings of an open story, at least


def story(lines: Sequence[str]) -> Group:
    """Explain text as the console shows it: plain text (never markup), the first line bold.

    Each line keeps its indent when the pane wraps it: a long error under `tasks:` reads
    as part of its task, not as a line of its own at the left edge."""
    lines = [printable(line) for line in lines]
    shown = []
    for n, line in enumerate(lines):
        body = line.lstrip(" ")
        shown.append(
            Padding(Text(body, style="bold" if n == 0 else ""), (0, 0, 0, len(line) - len(body)))
        )
    return Group(*shown)


class ExplainScreen(ConsoleModal[None]):
    BINDINGS = [
        Binding("escape,q", "dismiss", "Back"),
        Binding("r", "retry", "Retry"),
        Binding("c", "copy", "Copy"),
    ]

    def __init__(self, source: str, key: str, task: Task | None = None) -> None:
        super().__init__()
        self.source_name = source  # ALIAS/BUCKET
        self.key = key
        self.task_shown = task  # the failure it was opened from, if any
        self.explanation: Explanation | None = None
        self._asking = False  # a telling is under way

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog explain"):
            title = f"Why? {printable(self.source_name)}/{printable(self.key)}"
            yield Label(Text(title), classes="title")
            with VerticalScroll():
                yield Static(Text("asking the engine…"), id="story")
            yield Label("esc back · r retry · c copy the text", classes="hint")

    def on_mount(self) -> None:
        self.load()
        # The story follows the object (a retry landing, a link coming back), but not at the
        # dashboard's pace: each telling lists the key on both stores.
        self.set_interval(max(STORY_EVERY, self.host.refresh_every), self.follow)

    def follow(self) -> None:
        """Tell it again, unless a telling is still under way (a slow store): never cancel
        one to start the next, or a story slower than the interval would never be told."""
        if not self._asking:
            self.load()

    @work(exclusive=True, group="explain")
    async def load(self) -> None:
        shown = self.query_one("#story", Static)
        self._asking = True
        try:
            explanation = await self.host.source.explain(self.source_name, self.key)
        except MirrorlineError as exc:
            shown.update(story(self.unexplained(exc)))
            return
        finally:
            self._asking = False
        self.explanation = explanation
        shown.update(story(explanation.lines()))
        title = self.query_one(".title", Label)
        title.remove_class(*VERDICT_TONE.values())
        title.add_class(VERDICT_TONE.get(explanation.verdict, "-plain"))

    def unexplained(self, exc: MirrorlineError) -> list[str]:
        """What the console still knows when the engine cannot tell the story (an alias
        since removed, a store that refuses): the failure this screen was opened from."""
        lines = [f"cannot explain: {exc.reason}"]
        if self.task_shown is not None:
            row = TaskRow.of(self.task_shown, None, 0.0, [])
            lines += ["", f"the failure this was opened from, on key {self.key}:"]
            lines += [f"  {line}" for line in task_lines(row, self.host.clock())]
        return lines

    def parked_ids(self) -> list[int]:
        if self.task_shown is not None:
            return [self.task_shown.id]
        tasks = self.explanation.tasks if self.explanation else []
        return [t.id for t in tasks if t.state in PARKED]

    def action_retry(self) -> None:
        if self.host.read_only:
            self.notify("Read-only console: no actions", severity="warning")
            return
        ids = self.parked_ids()
        if not ids:
            self.notify("Nothing parked for this key: nothing to retry", severity="warning")
            return
        # On success the story is told again at once: the operator sees the task pending.
        self.post_message(RetryRequested(ids=ids, then=self.load))

    def action_copy(self) -> None:
        if self.explanation is None:
            self.notify("Nothing to copy yet", severity="warning")
            return
        lines = self.explanation.lines()
        self.app.copy_to_clipboard("\n".join(lines) + "\n")
        self.notify(f"Copied the explanation of {printable(self.key)!r} ({len(lines)} lines)")


def parse_where(text: str) -> tuple[str, str]:
    """ALIAS/BUCKET/KEY into the source and the key (a key may hold slashes itself)."""
    alias, _, rest = text.strip().partition("/")
    bucket, _, key = rest.partition("/")
    if not (alias and bucket and key):
        raise ValueError("expected ALIAS/BUCKET/KEY, e.g. prod/photos/2026/11/IMG_0001.heic")
    return f"{alias}/{bucket}", key


class KeyPrompt(ConsoleModal[tuple[str, str] | None]):
    """`w`: ask for any key by name; the answer opens its explanation."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, start: str, sources: Sequence[str]) -> None:
        super().__init__()
        self.start = start  # the selected policy's source and a slash: type the key
        self.sources = sources

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog form prompt"):
            yield Label("Is this object replicated? ALIAS/BUCKET/KEY", classes="title")
            yield Input(self.start, placeholder="ALIAS/BUCKET/KEY", id="where")
            yield Label("", id="where-error", classes="field-error")
            known = ", ".join(printable(s) for s in self.sources) or "none yet"
            yield Label(Text(f"sources: {known} · enter asks · esc cancels"), classes="hint")

    def on_mount(self) -> None:
        box = self.query_one("#where", Input)
        box.focus()
        box.cursor_position = len(box.value)

    @on(Input.Submitted, "#where")
    def ask(self, event: Input.Submitted) -> None:
        try:
            self.dismiss(parse_where(event.value))
        except ValueError as exc:
            say(self.query_one("#where-error", Label), str(exc))
