"""Why a policy's dispatch is held: the words `status` and the console show in STATE.

A stuck queue must say why without a key press. The reasons come from what the
dispatcher sees right now (links, the policy's bandwidth bucket, the part budget,
keys waiting behind older versions of themselves), checked in the order an
operator would fix them: a link down first, the slowest explanation last.
"""

from __future__ import annotations

from engine.replication.dispatcher import Dispatcher, Route


def short(seconds: float) -> str:
    """A duration in one unit, as a table cell has room for: 45s, 2m, 3h, 2d."""
    s = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


def hold_of(policy: str, route: Route, dispatcher: Dispatcher, pending: int, now: float) -> str:
    """'' while the policy's tasks flow (or there are none); else why they do not.

    Paused is not decided here: the policy's state says it, with or without an engine."""
    for role, link in (("src", route.source_link), ("dst", route.target_link)):
        if not link.online:
            return f"waiting: {role} offline {short(now - link.since)}"
    behind = dispatcher.queued_behind(policy)
    if not behind and pending and policy in dispatcher.starved:
        behind = dispatcher.busy_keys(policy)  # its pending tasks wait for these keys
    if behind:
        more = f" (+{len(behind) - 1} keys)" if len(behind) > 1 else ""
        return f"waiting: older version of {behind[0]} in flight{more}"
    context = route.context
    if context.limit is not None and context.limit.saturated:
        return "throttled"
    if context.starved:
        return "multipart budget"
    return ""
