"""One table of operator actions: it feeds key bindings, the footer, `?` help and ctrl+p.

An action that changes the engine is marked `mutates`; `--read-only` turns all of
those off in one place, so a wall screen cannot pause replication by accident.

The demo's keys (`mirrorline demo`) are capitals, plus `+` and `-`: the lower-case
letters they are named after already mean something on these screens (c copy,
l audit, x export, e edit), and an operator's keys must not change meaning in a
demo. They work only when the console runs on a demo (the app checks).
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class Action:
    name: str  # the action_<name> method
    keys: str  # Textual key names, comma separated
    label: str  # footer
    description: str  # help screen and command palette
    mutates: bool = False
    footer: bool = True
    invoke: str = ""  # the Textual action, when it is not action_<name> (one with arguments)
    demo: bool = False  # only on a demo's console

    @property
    def call(self) -> str:
        return self.invoke or self.name


def demo_key(name: str, keys: str, label: str, description: str) -> Action:
    """A demo key: `demo('<name>')` on the app, off the footer (the demo bar lists them)."""
    return Action(
        f"demo_{name}", keys, label, description, footer=False, invoke=f"demo({name!r})", demo=True
    )


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("pause_policy", "p", "Pause", "Pause or resume the selected policy", True),
        Action("pause_engine", "P", "Pause all", "Pause or resume the whole engine", True),
        Action("retry", "r", "Retry", "Retry the selected failure (or the marked ones)", True),
        Action("retry_all", "R", "Retry all", "Retry every failed task (asks first)", True),
        Action("add_policy", "a", "Add policy", "Add a replication policy", True),
        Action(
            "add_endpoint",
            "A",
            "Add endpoint",
            "Add an S3 endpoint (alias): URL and keys, checked on save",
            True,
            footer=False,
        ),
        Action("edit_policy", "e", "Edit", "Edit the selected policy", True, footer=False),
        Action(
            "toggle_policy", "t", "Enable", "Enable or disable the selected policy", True, False
        ),
        Action(
            "delete_policy", "D", "Delete", "Delete the selected policy (asks first)", True, False
        ),
        Action("resync", "s", "Resync", "Resync the selected policy (asks first)", True, False),
        Action(
            "failures", "F", "Failures", "Failures by cause; Enter: its tasks, then a task's story"
        ),
        Action(
            "explain", "w", "Why?", "Is this object replicated? Ask for any key by name (explain)"
        ),
        Action("dashboard", "d", "Dashboard", "Back to the dashboard", footer=False),
        Action("filter", "slash", "Filter", "Filter by key or error (Esc clears)"),
        Action("mark", "space", "Mark", "Mark or unmark the selected failure", footer=False),
        Action("details", "enter", "Details", "Open the selected row", footer=False),
        Action("freeze", "f", "Freeze", "Freeze the display; the engine keeps running"),
        Action("export", "x", "Export", "Export the failures to CSV and JSON", footer=False),
        Action("copy", "c", "Copy", "Copy the selected key and error (OSC 52)", footer=False),
        Action("audit", "l", "Audit", "Operator actions: who did what, when", footer=False),
        Action("help", "question_mark", "Help", "Keys and what they do"),
        Action("quit", "q", "Quit", "Quit (an embedded engine drains first)"),
        demo_key(
            "cut", "C", "Cut", "Demo: cut the link to the target (the engine holds its queue)"
        ),
        demo_key("latency", "L", "Latency", "Demo: add latency on the link to the target"),
        demo_key("throttle", "B", "Bandwidth", "Demo: cap the link's bandwidth"),
        demo_key("resets", "X", "Resets", "Demo: reset connections in the middle of a body"),
        demo_key("heal", "H", "Heal", "Demo: every fault off"),
        demo_key("faster", "plus", "Faster", "Demo: double the write rate on the source"),
        demo_key("slower", "minus", "Slower", "Demo: halve the write rate"),
        demo_key("events", "E", "Events", "Demo: post each write as a MinIO webhook event, or not"),
    )
}

DEMO_KEYS = tuple(name for name, action in ACTIONS.items() if action.demo)


def allowed(name: str, read_only: bool) -> bool:
    """The --read-only gate: an action that changes the engine is off; the rest stay on."""
    known = ACTIONS.get(name)
    return not (known is not None and known.mutates and read_only)


def bindings(*names: str) -> list[Binding]:
    out = []
    for name in names:
        a = ACTIONS[name]
        out.append(Binding(a.keys, a.call, a.label, show=a.footer, id=name))
    return out


def key_label(action: Action) -> str:
    names = {"question_mark": "?", "slash": "/", "plus": "+", "minus": "-"}
    return ", ".join(names.get(k, k) for k in action.keys.split(","))
