"""One error for everything that can fail while wiring a site's networks on a host.

The host agent (and, through it, the compute service) needs to say *what* failed — a
missing tool, a refused ``nft`` ruleset, a namespace that cannot be made — not which
Python exception a subprocess raised; so foreign errors (``OSError``, a non-zero exit,
a timeout) are translated where they happen into ``HostNetError``, whose ``step``
names the operation ("create bridge br-3f2a9c1e-77 in edgefed-berlin") and whose
message ends with the tool's own words.

    DriverError (edgefed.drivers.base)
    └── HostNetError    step: what was being done; the message: why it failed

A subclass of ``DriverError`` because the compute service already turns one into a
server fault.
"""

from __future__ import annotations

from edgefed.drivers.base import DriverError


class HostNetError(DriverError):
    """``step`` failed; the message says why (the tool's stderr, a missing binary, a
    timeout, a check that did not hold)."""

    def __init__(self, step: str, why: str) -> None:
        super().__init__(f"{step}: {why}")
        self.step = step
        self.why = why
