"""The header strip shows a running engine's configuration problem (issue 11, item 2)."""

from __future__ import annotations

from engine.telemetry.snapshot import EngineInfo, Snapshot
from tui.widgets.status import status_line


def header(problem: str, running: bool = True) -> str:
    info = EngineInfo(running, False, 1.0, 2.0, config_error=problem)
    snap = Snapshot(info, [], [], [], [])
    line = status_line(
        snap, now=2.0, received_at=2.0, refresh=1.0, error="", frozen=False, where=""
    )
    return line.plain


def test_the_header_says_the_engine_runs_on_its_last_good_configuration() -> None:
    problem = "/state/aliases.json is not valid JSON (Expecting value at line 1 column 2)"
    assert f"CONFIG ERROR (last good in use): {problem}" in header(problem)
    assert "CONFIG ERROR" not in header("")
    assert "CONFIG ERROR" not in header(problem, running=False)  # a stopped engine: old news
    assert header("x" * 200).count("x") == 79  # one line, cut
