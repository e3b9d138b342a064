"""Which columns of a table fit a width, and how narrow the elastic ones get.

Over SSH at 80x24 the numbers an operator came for must stay on screen however
long the policy ids and bucket names are. So a table names the columns it must
keep, the ones it may shrink (with an ellipsis: the full text is one key away)
and the order in which the others give way; `fit` answers from the widths the
cells actually have, so short names leave room for more columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

PADDING = 2  # a DataTable cell's padding, both sides together


@dataclass(frozen=True)
class Spec:
    key: str
    label: str
    keep: bool = False  # shown at every width
    shrink_to: int = 0  # elastic: may be cut down to this many cells (0: never cut)
    give_way: int = 0  # optional columns leave in descending order of this


@dataclass(frozen=True)
class Fit:
    hidden: frozenset[str]
    widths: dict[str, int]  # the elastic columns cut below their natural width


def natural(specs: Sequence[Spec], rows: Sequence[Sequence[str]]) -> dict[str, int]:
    """Each column's width with nothing cut: its widest cell or its label."""
    widths = {s.key: len(s.label) for s in specs}
    for row in rows:
        for spec, cell in zip(specs, row, strict=True):
            widths[spec.key] = max(widths[spec.key], len(cell))
    return widths


def fit(specs: Sequence[Spec], rows: Sequence[Sequence[str]], width: int) -> Fit:
    """Keep every `keep` column (elastic ones cut to their floor first), add the others
    while they fit (last to give way first), then hand what is left back to the elastic
    ones, in their order."""
    want = natural(specs, rows)
    size = {s.key: min(want[s.key], s.shrink_to) if s.shrink_to else want[s.key] for s in specs}
    shown = {s.key for s in specs if s.keep}
    used = sum(size[k] + PADDING for k in shown)
    for spec in sorted((s for s in specs if not s.keep), key=lambda s: s.give_way):
        cost = size[spec.key] + PADDING
        if used + cost <= width:
            shown.add(spec.key)
            used += cost
    for spec in specs:
        if spec.key in shown and spec.shrink_to:
            grow = min(want[spec.key] - size[spec.key], max(0, width - used))
            size[spec.key] += grow
            used += grow
    cut = {s.key: size[s.key] for s in specs if s.key in shown and size[s.key] < want[s.key]}
    return Fit(frozenset(s.key for s in specs if s.key not in shown), cut)
