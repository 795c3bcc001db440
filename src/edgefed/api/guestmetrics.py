"""What the compute service tells fleet operations about each guest, for ``/metrics``.

The port the compute service fills (``SiteContext.guest_metrics``, None on a site
without compute). Fleet operations read it on every scrape and never import compute.
Power state, vCPUs and RAM are the server's record; the counters (CPU time, disk and
network bytes, memory in use) come from the driver's diagnostics, which may cost a
round trip to a host agent per guest: the implementation caches them and refreshes at
most every so often, in bounded time, so a scrape never waits on every guest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class GuestSample:
    """One live server placed on a host; a counter is None where the driver says nothing
    (a stopped guest, the fake driver, a host that did not answer)."""

    server_id: str
    project_id: str
    host: str
    power_state: int  # Nova's: 1 running, 3 paused, 4 shutdown, 7 suspended…
    vcpus: int
    ram_mb: int
    cpu_time_seconds: float | None = None
    memory_used_mb: int | None = None
    disk_read_bytes: int | None = None
    disk_write_bytes: int | None = None
    net_rx_bytes: int | None = None
    net_tx_bytes: int | None = None


class GuestMetrics(Protocol):
    async def samples(self) -> Sequence[GuestSample]:
        """Every live server with a host, its counters at most a refresh interval old."""
        ...
