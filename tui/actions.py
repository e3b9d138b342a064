"""One table of operator actions: it feeds key bindings, the footer, `?` help and ctrl+p.

An action that changes the engine is marked `mutates`; `--read-only` turns all of
those off in one place, so a wall screen cannot pause replication by accident.
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


ACTIONS: dict[str, Action] = {
    a.name: a
    for a in (
        Action("pause_policy", "p", "Pause", "Pause or resume the selected policy", True),
        Action("pause_engine", "P", "Pause all", "Pause or resume the whole engine", True),
        Action("retry", "r", "Retry", "Retry the selected failure (or the marked ones)", True),
        Action("retry_all", "R", "Retry all", "Retry every failed task (asks first)", True),
        Action("add_policy", "a", "Add policy", "Add a replication policy", True),
        Action("edit_policy", "e", "Edit", "Edit the selected policy", True, footer=False),
        Action(
            "toggle_policy", "t", "Enable", "Enable or disable the selected policy", True, False
        ),
        Action(
            "delete_policy", "D", "Delete", "Delete the selected policy (asks first)", True, False
        ),
        Action("resync", "s", "Resync", "Resync the selected policy (asks first)", True, False),
        Action("failures", "F", "Failures", "Every failed and retrying task, paged"),
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
    )
}


def allowed(name: str, read_only: bool) -> bool:
    """The --read-only gate: an action that changes the engine is off; the rest stay on."""
    known = ACTIONS.get(name)
    return not (known is not None and known.mutates and read_only)


def bindings(*names: str) -> list[Binding]:
    out = []
    for name in names:
        a = ACTIONS[name]
        out.append(Binding(a.keys, name, a.label, show=a.footer, id=name))
    return out


def key_label(action: Action) -> str:
    names = {"question_mark": "?", "slash": "/", "space": "space", "enter": "enter"}
    return ", ".join(names.get(k, k) for k in action.keys.split(","))
