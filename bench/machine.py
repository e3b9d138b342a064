"""What the whole machine and single processes spend, from /proc (Linux only).

The benchmarks share two cores with the servers they drive and with other
people's work, so a tool's figures are read beside the machine's busy cores.
"""

from __future__ import annotations

import os

TICKS = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process (all its threads), 0.0 once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (fields 14, 15)


def _cpu_times() -> tuple[int, int]:
    with open("/proc/stat") as fh:
        values = [int(x) for x in fh.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values[:8]) - idle, sum(values[:8])


class MachineMeter:
    """Busy cores over an interval: started at construction, read with busy_cores()."""

    def __init__(self) -> None:
        self._busy, self._total = _cpu_times()

    def busy_cores(self) -> float:
        busy, total = _cpu_times()
        spent = max(1, total - self._total)
        return (os.cpu_count() or 1) * (busy - self._busy) / spent
