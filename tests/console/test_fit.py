"""Which policy columns an 80-column terminal keeps (tui.widgets.fit), whatever the names."""

from __future__ import annotations

from tui.screens.dashboard import FRAME, POLICY_COLUMNS
from tui.widgets.fit import PADDING, fit, natural

KEPT = {"id", "state", "pending", "failed", "lag"}


def row(policy: str, bucket: str, state: str) -> list[str]:
    return [
        policy,
        f"src/{bucket}",
        f"dst/{bucket}",
        state,
        "1,000,000",
        "32",
        "0",
        "10,000",
        "2h05m",
        "12.3 MiB/s",
        "50.0 MiB/s",
    ]


def test_at_80_columns_the_numbers_stay_and_the_long_id_is_cut() -> None:
    rows = [row("archive-2026-eu-west-to-dr", "b" * 63, "waiting: dst offline 2m")]
    shaped = fit(POLICY_COLUMNS, rows, 80 - FRAME)
    shown = {c.key for c in POLICY_COLUMNS} - shaped.hidden
    assert shown >= KEPT
    assert {"source", "target"} <= shaped.hidden
    assert shaped.widths["id"] < len(rows[0][0])  # cut, with an ellipsis in the table
    assert "state" not in shaped.widths  # the hold reason reads whole
    want = natural(POLICY_COLUMNS, rows)
    used = sum(shaped.widths.get(k, want[k]) + PADDING for k in shown)
    assert used <= 80 - FRAME


def test_short_names_leave_room_for_everything_at_120() -> None:
    rows = [row("p1", "photos", "active")]
    shaped = fit(POLICY_COLUMNS, rows, 120 - FRAME)
    assert shaped.hidden == frozenset() and shaped.widths == {}


def test_too_narrow_for_all_kept_columns_still_keeps_them_at_their_floor() -> None:
    rows = [row("archive-2026-eu-west-to-dr", "b", "active")]
    shaped = fit(POLICY_COLUMNS, rows, 40)
    assert {c.key for c in POLICY_COLUMNS} - shaped.hidden == KEPT
    assert shaped.widths["id"] == 10
