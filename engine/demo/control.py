"""What the console may ask of a running demo: its state, and the fault and traffic keys.

Kept apart from the demo's machinery (stores, proxy, workload) so the console can
import it without loading any of that: it sees a demo only through this interface,
as it sees the engine only through `engine.service.Service`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from enum import StrEnum


class DemoAction(StrEnum):
    CUT = "cut"  # refuse new connections to the target, drop open ones
    LATENCY = "latency"  # +300 ms each way
    THROTTLE = "throttle"  # cap the link at 256 KiB/s
    RESETS = "resets"  # reset connections after 256 KiB of request body
    HEAL = "heal"  # every fault off
    FASTER = "faster"  # double the write rate
    SLOWER = "slower"  # halve it
    EVENTS = "events"  # toggle: post each write to the engine's webhook, as MinIO would


@dataclass(frozen=True)
class DemoState:
    fault: str  # "healthy", "cut", "delay 300 ms", ...: one line, already worded
    fault_since: float | None  # epoch seconds the fault began (None when healthy)
    rate: float  # operations per second asked of the workload
    events: bool  # each write is also posted to the webhook
    ops: int  # operations the source accepted
    events_posted: int
    errors: int  # writes or event posts that failed


class DemoControl(abc.ABC):
    @abc.abstractmethod
    async def demo_state(self) -> DemoState: ...

    @abc.abstractmethod
    async def demo_act(self, action: DemoAction) -> DemoState:
        """Apply one key's action and return the state that shows it."""
