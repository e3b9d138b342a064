"""Bounds on the numbers and words a caller hands the service, checked before SQLite sees them.

SQLite stores integers in 64 bits: a larger Python int raises OverflowError deep
in a query (an HTTP 500, a traceback in the CLI), and NaN compares false with
everything, so a `since=nan` would quietly return nothing. Every front end (the
CLI on a state dir, the HTTP API, the console) reaches the store through
`LocalService`, which checks here; the API's parsing adds only "is it a number".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from engine.errors import UserError
from engine.policy import plain_text

MAX_ID = 2**63 - 1  # SQLite's largest integer: task ids and cursors live below it
MAX_QUERY = 1024  # characters of a task search: a key is at most 1024 bytes


def task_ids(ids: Sequence[int], what: str = "task id") -> list[int]:
    """Task ids as the queue numbers them: positive, within 64 bits."""
    for value in ids:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
            raise UserError(f"invalid {what} {value!r}: expected 1 to {MAX_ID}")
    return list(ids)


def cursor(value: int) -> int:
    """A page cursor (the last id of the previous page; 0 for the first page)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise UserError(f"invalid cursor {value!r}: expected 0 to {MAX_ID}")
    return value


def since(value: float) -> float:
    """A time in seconds since the epoch: finite and not negative."""
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise UserError(f"invalid time {value!r}: expected seconds since 1970 (0 or more)")
    return float(value)


def query(value: str) -> str:
    """A search over keys and errors: plain text of a key's length at most."""
    if len(value) > MAX_QUERY:
        raise UserError(f"the search is longer than {MAX_QUERY} characters")
    return plain_text(value, "search")


def at_least_one(value: int | None, what: str, high: int = MAX_ID) -> int | None:
    """An optional count (a verify's sample): None, or 1 to `high`."""
    if value is None:
        return None
    if isinstance(value, bool) or not 1 <= value <= high:
        raise UserError(f"the {what} must be at least 1 and at most {high}")
    return value
