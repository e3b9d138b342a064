"""What a transfer needs to know besides its task: the policy's stores, sizes and limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.policy import Policy
from engine.replication.bandwidth import TokenBucket
from engine.replication.budget import ByteBudget
from engine.s3 import ObjectStore

MiB = 1024 * 1024


@dataclass
class TransferContext:
    """Sizes, smallest first: up to `stream_from` an object is read whole and sent in one
    PUT; up to `multipart_from` it is streamed in one PUT; larger ones go in parts of
    `part_size`, streamed, as many at once as `part_budget` (bytes, engine-wide) allows."""

    policy: Policy
    source: ObjectStore
    target: ObjectStore
    source_origin: str  # "host:port/bucket" of the policy's source
    target_origin: str  # "host:port/bucket" of the policy's target
    part_size: int = 8 * MiB
    part_budget: ByteBudget = field(default_factory=lambda: ByteBudget(4 * 8 * MiB))
    stream_from: int = MiB
    multipart_from: int = 256 * MiB
    on_bytes: Callable[[int], None] = lambda n: None
    limit: TokenBucket | None = None  # the policy's --bandwidth, shared by its transfers
    # time.monotonic() until which a task run again waits for a dead run's writes to land
    # before copying (engine/replication/rerun.py); 0 when no run died before this one
    settle_until: float = 0.0
    starved: int = 0  # uploads waiting for their first part's budget: it is all elsewhere
