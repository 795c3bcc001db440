"""CPU pinning for the benchmarks: the server under test on one core, the generator on another.

The machine has two cores. If the server and the load generator float, they fight for
the same core now and then and the figures get noisy; pinning makes every run compare
like with like. Children inherit the affinity of the process that forks them, so a
server started inside ``pinned_children(SERVER_CPU)`` stays on that core, every thread
included. On a one-core machine (or without ``sched_setaffinity``) pinning is a no-op.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

SERVER_CPU = 0
LOADGEN_CPU = 1


def can_pin() -> bool:
    return hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) >= 2


def loadgen_cpu() -> int | None:
    return LOADGEN_CPU if can_pin() else None


@contextlib.contextmanager
def pinned_children(cpu: int) -> Iterator[None]:
    """Processes started inside this block run on ``cpu`` only."""
    if not can_pin():
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its reaped children, from /proc."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    # fields[11..14] are utime, stime, cutime, cstime (after the state field at [0])
    return sum(int(f) for f in fields[11:15]) / ticks


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its live children (gunicorn's master + worker)."""
    total = cpu_seconds(pid)
    with contextlib.suppress(FileNotFoundError):
        for child in open(f"/proc/{pid}/task/{pid}/children").read().split():
            with contextlib.suppress(FileNotFoundError):
                total += cpu_seconds(int(child))
    return total
