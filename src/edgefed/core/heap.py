"""Handing the C heap's free memory back to the system.

glibc keeps memory a program frees for its next allocations: once a block of some size
has been mapped and freed, it takes blocks up to that size (up to 32 MiB) from its heaps
and keeps up to twice that free at a heap's top. A password check (argon2, 19 MiB:
services/identity/passwords.py) is such a block: from the second check on, an idle site
held 19 MiB it no longer used (99 MiB instead of 80, docs/bench.md, ``footprint``).

``malloc_trim(0)`` hands back the free pages of the heaps, all of them for the main
heap but not the top of a thread's own heap, where a worker thread's check leaves its
19 MiB; so a site keeps one heap for all its threads (``one_heap``, before it starts
any). Handing the pages back after each check would cost the next one its page faults
(≈ 18 ms of a 30 ms check), so ``HeapRelease`` does it once no check has run for a while.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes

M_ARENA_MAX = -8  # glibc's mallopt parameter


def one_heap() -> None:
    """glibc's ``mallopt(M_ARENA_MAX, 1)``: threads started from now on allocate from
    the main heap, which ``release_free_heap`` hands back whole (a no-op where the C
    library is another). The site's few threads (a commit, file reads, password
    checks) mostly wait: sharing the heap's lock costs them nothing measurable."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, 1)


def release_free_heap() -> None:
    """glibc's ``malloc_trim(0)``: free pages of the C heaps back to the system (a
    no-op where the C library is another)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


class HeapRelease:
    """``release_free_heap`` once ``soon`` has not been called for ``after`` seconds."""

    def __init__(self, after: float) -> None:
        self.after = after
        self._pending: asyncio.TimerHandle | None = None

    def soon(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
        self._pending = asyncio.get_running_loop().call_later(self.after, self._release)

    def _release(self) -> None:
        self._pending = None
        release_free_heap()
