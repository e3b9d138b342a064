"""A DataTable that follows a changing set of keyed rows without rebuilding itself.

Rows are keyed; an update touches only the cells that changed. Removing a row
costs O(n) in Textual (#5273), so when many rows leave at once the table is
rebuilt instead, keeping the cursor on the same key. Rows are capped: the
console shows a window, the engine keeps the rest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.color import Color
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowDoesNotExist

from engine.printable import printable

# A cell: plain text, or (text, tone) with tone one of success/warning/error/primary/dim.
# Text objects, never markup strings: a key like "a[b]" must show as itself, and control
# characters as escapes (a key is written by anyone who can write to the bucket).
Cell = str | tuple[str, str]
REBUILD_OVER = 20  # stale rows above which clear() + add beats remove_row
ROWS_PER_STEP = 16  # rows synced between two chances for a key to be handled


def plain(cell: Cell) -> str:
    """A cell's text as the table shows it."""
    return printable(cell if isinstance(cell, str) else cell[0])


class LiveTable(DataTable[Text]):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
    ]

    def __init__(
        self, columns: Sequence[tuple[str, str]], cap: int = 500, **kwargs: object
    ) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)  # type: ignore[arg-type]
        self._columns = list(columns)  # (key, label)
        self._hidden: frozenset[str] = frozenset()
        self._widths: dict[str, int] = {}  # columns cut to a width (cells end in an ellipsis)
        self._last: list[tuple[str, list[Text]]] = []
        self.cap = cap

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        for key, label in self._columns:
            if key not in self._hidden:
                self.add_column(label, key=key, width=self._widths.get(key))

    def shape(self, hidden: frozenset[str], widths: dict[str, int] | None = None) -> None:
        """Show every column but `hidden`, the ones in `widths` cut to that many cells
        (narrow terminals, see tui.widgets.fit); rows are redrawn at once."""
        widths = widths or {}
        if hidden == self._hidden and widths == self._widths:
            return
        self._hidden, self._widths = hidden, dict(widths)
        shown = self._last
        self.clear(columns=True)
        self._add_columns()
        self._rebuild(self._visible(shown))
        self._last = shown  # after the rebuild, which clears it: else the next sync sees no rows

    def clear(self, columns: bool = False) -> LiveTable:
        self._last = []  # the next sync redraws every row
        super().clear(columns)
        return self

    def _visible(self, rows: list[tuple[str, list[Text]]]) -> list[tuple[str, list[Text]]]:
        if not self._hidden:
            return rows
        keep = [i for i, (key, _) in enumerate(self._columns) if key not in self._hidden]
        return [(key, [cells[i] for i in keep]) for key, cells in rows]

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        except CellDoesNotExist:
            return None
        return row_key.value

    def tone(self, name: str) -> Style:
        """A theme colour as a Rich style, so cells follow the theme (ansi ones included)."""
        if name == "dim":
            return Style(dim=True)
        value = getattr(self.app.current_theme, name, None)
        return Style(color=Color.parse(value).rich_color) if value else Style()

    def text(self, cell: Cell) -> Text:
        style = self.tone(cell[1]) if isinstance(cell, tuple) else ""
        return Text(plain(cell), style=style, no_wrap=True, overflow="ellipsis")

    def sync(self, cells: Sequence[tuple[str, Sequence[Cell]]]) -> None:
        """Make the table show exactly these rows (in this order for new ones), touching little."""
        for _ in self.sync_steps(cells):
            pass

    def sync_steps(self, cells: Sequence[tuple[str, Sequence[Cell]]]) -> Iterator[None]:
        """`sync`, a few rows at a time: it yields between pieces so that a refresh never
        holds a key back for long (see Console.paint). Stopped half-way, the next sync
        finishes the job: rows are compared with what the table holds, not with a flag."""
        fresh = [(key, [self.text(c) for c in row]) for key, row in cells[: self.cap]]
        if fresh == self._last:
            return  # nothing changed: no cell touched, nothing to repaint
        rows = self._visible(fresh)
        wanted = {key for key, _ in rows}
        present = {key.value for key in self.rows}
        stale = present - wanted
        if len(stale) > REBUILD_OVER:
            self._rebuild(rows)
            self._last = fresh
            return
        for key in stale:
            self.remove_row(key)
        columns = [key for key, _ in self._columns if key not in self._hidden]
        for n, (key, cells) in enumerate(rows, 1):
            if key not in present:
                self.add_row(*cells, key=key)
            else:
                self._update_row(key, columns, cells)
            if n % ROWS_PER_STEP == 0:
                yield
        self._last = fresh

    def _update_row(self, key: str, columns: list[str], cells: Sequence[Text]) -> None:
        for column, value in zip(columns, cells, strict=True):
            if self.get_cell(key, column) != value:
                # Widening a column re-lays the whole table out: only when it must.
                wider = (
                    column not in self._widths
                    and value.cell_len > self.columns[ColumnKey(column)].content_width
                )
                self.update_cell(key, column, value, update_width=wider)

    def _rebuild(self, rows: Sequence[tuple[str, Sequence[Text]]]) -> None:
        keep = self.selected_key
        self.clear()
        for key, cells in rows:
            self.add_row(*cells, key=key)
        if keep is not None:
            with contextlib.suppress(RowDoesNotExist):
                self.move_cursor(row=self.get_row_index(keep))
