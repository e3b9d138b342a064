"""The in-flight pane is half the dashboard: a long key gives up its middle, never the
pane its width (a table wider than its pane cut PROGRESS to "PROGRE" and scrolled sideways).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from engine.service.local import LocalService
from engine.telemetry.snapshot import Snapshot, Transfer
from tests.console.console_seed import FROZEN, console_over, settle, until_shown
from tui.app import Console
from tui.widgets.table import LiveTable

KEY = "load/backups/2026/11/30/" + "deep/" * 8 + "dump-000234.txt"
MiB = 1024 * 1024


MOVING = Transfer(7, "photos", KEY, "v1", "put", 20 * MiB, 5 * MiB, 1.5e6, FROZEN - 3, 1)


@dataclass
class Copying(LocalService):
    """The seeded state, with one large object in flight (until the test says otherwise)."""

    moving: list[Transfer] = field(default_factory=lambda: [MOVING])
    taken: int | None = None  # the queue's in-flight count for photos, if set

    async def status(self) -> Snapshot:
        snap = replace(await super().status(), transfers=self.moving)
        if self.taken is None:
            return snap
        policies = [
            replace(p, backlog=replace(p.backlog, in_flight=self.taken if p.id == "photos" else 0))
            for p in snap.policies
        ]
        return replace(snap, policies=policies)


@pytest.fixture
def copying(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    for seeded in console_over(tmp_path, monkeypatch, history=False):
        service = seeded.source
        assert isinstance(service, LocalService)
        yield Console(
            Copying(service.state, service.book, "console"),
            refresh=3600,
            where="state: /srv/mirrorline",
            clock=lambda: FROZEN,
        )


@pytest.mark.parametrize("size", [(120, 36), (80, 24)])
async def test_a_long_key_in_flight_is_cut_in_the_middle_to_fit_the_pane(
    copying: Console, size: tuple[int, int]
) -> None:
    async with copying.run_test(size=size) as pilot:
        table = copying.screen.query_one("#transfers", LiveTable)
        await until_shown(pilot, lambda: table.row_count == 1)
        await settle(pilot)
        assert table.virtual_size.width <= table.size.width, "wider than its pane"
        shown = table.get_cell("7", "key").plain
        assert shown.startswith("photos: lo") and shown.endswith("000234.txt"), shown
        assert "…" in shown
        assert "25%" in table.get_cell("7", "progress").plain


async def test_the_pane_empties_when_the_copies_end(copying: Console) -> None:
    """Before: a refit (a column back once the long key left) cleared the table's memory of
    its rows, so the next empty answer changed nothing and finished copies stayed listed
    under "In flight (0)"."""
    async with copying.run_test(size=(120, 36)) as pilot:
        table = copying.screen.query_one("#transfers", LiveTable)
        await until_shown(pilot, lambda: table.row_count == 1)
        service = copying.source
        assert isinstance(service, Copying)
        service.moving = []
        await copying.poll_now()
        await settle(pilot)
        assert copying.screen.query_one("#transfers-panel").border_title == "In flight (0)"
        assert table.row_count == 0


async def test_the_pane_title_says_why_it_holds_fewer_than_the_in_flt_column(
    copying: Console,
) -> None:
    """Before: the demo's dashboard showed IN-FLT 1 beside "In flight (0)", with nothing to
    say the queue's count also holds tasks waiting behind their key's running copy."""
    service = copying.source
    assert isinstance(service, Copying)
    service.taken = 3
    async with copying.run_test(size=(120, 36)) as pilot:
        panel = copying.screen.query_one("#transfers-panel")
        await until_shown(pilot, lambda: panel.border_title != "In flight")
        await settle(pilot)
        assert panel.border_title == "In flight (3: 1 copying, 2 waiting)"
        column = copying.screen.query_one("#policies", LiveTable)
        assert column.get_cell("photos", "in_flight").plain == "3"
        service.taken = 1
        await copying.poll_now()
        await settle(pilot)
        assert panel.border_title == "In flight (1)"


@pytest.fixture
def failing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Console]:
    yield from console_over(tmp_path, monkeypatch, history=False)


@pytest.mark.parametrize("size", [(100, 30), (120, 36)])
async def test_the_failures_pane_fits_its_half_giving_up_first_then_op(
    failing: Console, size: tuple[int, int]
) -> None:
    """Before: its five columns took 52 cells whatever the pane had, and at 100 columns
    (48 cells) the table scrolled sideways; the cause and its count must stay."""
    async with failing.run_test(size=size) as pilot:
        table = failing.screen.query_one("#recent", LiveTable)
        await until_shown(pilot, lambda: table.row_count == 2)
        await settle(pilot)
        assert table.virtual_size.width <= table.size.width, "wider than its pane"
        shown = {c.key.value for c in table.ordered_columns}
        assert {"code", "policy", "count"} <= shown
        keys = list(table.rows)
        assert {table.get_cell(k, "code").plain for k in keys} == {"AccessDenied", "Connection"}
        assert ("first" in shown) == (size[0] >= 120), shown
