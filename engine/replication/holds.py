"""Why a policy's dispatch is held: the words `status` and the console show in STATE.

A stuck queue must say why without a key press. The reasons come from what the
dispatcher sees right now (links, the policy's bandwidth bucket, the part budget,
keys waiting behind older versions of themselves), checked in the order an
operator would fix them: a link down first, the slowest explanation last.
"""

from __future__ import annotations

from engine.replication.dispatcher import Dispatcher, Route

HELD_AFTER = 10.0  # seconds a key's copy runs before its waiting versions count as held


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
    # Only when the last claim had room and found nothing of the policy: a newer version
    # waiting in line while other keys flow is ordinary order, not a hold.
    behind: list[str] = []
    if policy in dispatcher.starved:
        behind = dispatcher.queued_behind(policy)
        if not behind and pending:
            behind = dispatcher.busy_keys(policy)  # its pending tasks wait for these keys
    # A key copied for a few seconds while its newer version waits is the order keeping
    # itself; held back for longer (a large or slow copy) it is what the queue waits on.
    since = {
        f.task.key: f.started_at for f in dispatcher.in_flight.values() if f.task.policy == policy
    }
    stuck = [key for key in behind if now - since.get(key, now) >= HELD_AFTER]
    if stuck:
        more = f" (+{len(stuck) - 1} keys)" if len(stuck) > 1 else ""
        return f"waiting: older version of {stuck[0]} in flight{more}"
    context = route.context
    if context.limit is not None and context.limit.saturated:
        return "throttled"
    if context.starved:
        return "multipart budget"
    return ""
