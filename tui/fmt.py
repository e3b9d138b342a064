"""Numbers as an operator reads them: short, aligned, and never 'None'."""

from __future__ import annotations

import time

import humanize


def size(n: float | None) -> str:
    if n is None:
        return "-"
    return humanize.naturalsize(n, binary=True, format="%.1f").replace("Bytes", "B")


def rate(bytes_per_second: float) -> str:
    return f"{size(bytes_per_second)}/s"


def count(n: int | float) -> str:
    return f"{int(n):,}"


def duration(seconds: float | None) -> str:
    """1.2s, 42s, 11m40s, 3h02m, 2d04h: always at most 6 characters."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def ago(at: float | None, now: float | None = None) -> str:
    if not at:
        return "-"
    return duration(max(0.0, (now or time.time()) - at)) + " ago"


def clock(at: float | None) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) if at else "-"


def middle(text: str, width: int) -> str:
    """Shorten from the middle: both the prefix and the file name of a key stay readable."""
    if len(text) <= width:
        return text
    keep = width - 1
    return text[: keep // 2] + "…" + text[len(text) - (keep - keep // 2) :]


def bar(done: int, total: int, width: int = 12) -> str:
    """A text progress bar that survives 256 colours, no colour and copy-paste."""
    fraction = min(1.0, done / total) if total else 1.0
    filled = round(fraction * width)
    return "█" * filled + "░" * (width - filled) + f" {fraction * 100:3.0f}%"
