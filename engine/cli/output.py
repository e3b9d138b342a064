"""Tables and JSON for the terminal.

Every cell of a table goes through `printable`: keys, metadata and servers'
error texts come from someone else, and an escape sequence in one would repaint
the operator's terminal. JSON escapes control characters itself.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import click
import humanize

from engine.printable import printable


def emit_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(c) for c in headers]] + [[printable(str(c)) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        line = "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        click.echo(click.style(line, bold=True) if n == 0 else line)


def size(n: float) -> str:
    return humanize.naturalsize(n, binary=True, format="%.1f")


def age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f}s"
    return humanize.naturaldelta(seconds)


def say(text: str, err: bool = False) -> None:
    """One line that carries text from a store or a client, shown escaped."""
    click.echo(printable(text), err=err)
