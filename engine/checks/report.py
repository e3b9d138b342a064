"""What a check finds, as plain values: they cross the HTTP API and load nothing heavy."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Difference:
    """One key whose target copy is not what the source promises.

    `status` is one of missing, extra, size-differs, content-differs (diff, from
    the listings) or missing, differs, extra (verify, from the bytes)."""

    policy: str
    status: str
    key: str
    detail: str


@dataclass
class PolicyReport:
    """What `verify` found for one policy."""

    policy: str
    source: str  # ALIAS/BUCKET
    target: str
    checked: int = 0
    skipped: int = 0  # not expected on the target (tag filter) or gone while we looked
    differences: list[Difference] = field(default_factory=list)
