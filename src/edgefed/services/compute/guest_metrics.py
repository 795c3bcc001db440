"""Per-guest figures for ``/metrics`` (the ``api.guestmetrics.GuestMetrics`` port).

Power state, vCPUs and RAM come from the store at every call (one query). The counters
come from the driver's diagnostics, which for the QEMU driver is a command to a host
agent per guest: they are cached and refreshed at most every ``max_age`` seconds, a few
guests at a time (``concurrency``). A scrape waits at most ``timeout`` seconds for a
refresh; what has not answered by then goes on in the background and lands in the cache
for the next scrape (one call in flight per guest, never more), so with many guests
every one gets its figures, not only the first few in the list. A guest that stopped
loses its counters. Prometheus scrapes every 15 s or so, so a refresh interval of that
order keeps the agents' load at one diagnostics call per running guest per interval,
whatever the number of scrapers.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from edgefed.api.guestmetrics import GuestSample
from edgefed.drivers.base import ComputeDriver, DriverError, PowerState
from edgefed.store.compute import ServerRecord, ServerRepository

log = logging.getLogger("edgefed.compute.guest_metrics")


def _total(items: Any, key: str) -> int | None:
    """The sum of ``key`` over a diagnostics list; None when no item says it."""
    values = [
        item[key]
        for item in (items if isinstance(items, list) else [])
        if isinstance(item, Mapping)
        and isinstance(item.get(key), int | float)
        and not isinstance(item.get(key), bool)
    ]
    return int(sum(values)) if values else None


def counters(diagnostics: Mapping[str, Any]) -> dict[str, Any]:
    """The counters of one guest, from Nova's standardized diagnostics."""
    cpu_ns = _total(diagnostics.get("cpu_details"), "time")
    memory = diagnostics.get("memory_details")
    used = memory.get("used") if isinstance(memory, Mapping) else None
    disks, nics = diagnostics.get("disk_details"), diagnostics.get("nic_details")
    return {
        "cpu_time_seconds": None if cpu_ns is None else cpu_ns / 1e9,
        "memory_used_mb": used if isinstance(used, int) and not isinstance(used, bool) else None,
        "disk_read_bytes": _total(disks, "read_bytes"),
        "disk_write_bytes": _total(disks, "write_bytes"),
        "net_rx_bytes": _total(nics, "rx_octets"),
        "net_tx_bytes": _total(nics, "tx_octets"),
    }


class GuestMetricsCache:
    def __init__(
        self,
        *,
        servers: ServerRepository,
        driver: ComputeDriver,
        max_age: float = 15.0,
        timeout: float = 2.0,
        concurrency: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.servers = servers
        self.driver = driver
        self.max_age = max_age
        self.timeout = timeout
        self.concurrency = concurrency
        self.clock = clock
        self._counters: dict[str, dict[str, Any]] = {}
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._refreshed: float | None = None
        self._lock = asyncio.Lock()
        self._gate = asyncio.Semaphore(concurrency)

    async def samples(self) -> Sequence[GuestSample]:
        placed = [s for s in await self.servers.list_all(project_id=None) if s.host]
        running = [s for s in placed if s.power_state == PowerState.RUNNING]
        await self._refresh_if_old(running)
        return [
            GuestSample(
                server_id=s.id,
                project_id=s.project_id,
                host=s.host or "",
                power_state=s.power_state,
                vcpus=s.vcpus,
                ram_mb=s.ram,
                **self._counters.get(s.id, {}),
            )
            for s in placed
        ]

    async def _refresh_if_old(self, running: list[ServerRecord]) -> None:
        async with self._lock:
            now = self.clock()
            if self._refreshed is not None and now - self._refreshed < self.max_age:
                return
            self._refreshed = now
            alive = {s.id for s in running}
            self._counters = {k: v for k, v in self._counters.items() if k in alive}
            for server in running:
                if server.id not in self._inflight:
                    task = asyncio.create_task(self._sample(server.id))
                    self._inflight[server.id] = task
                    task.add_done_callback(functools.partial(self._forget, server.id))
            waiting = [self._inflight[s.id] for s in running if s.id in self._inflight]
            if waiting:
                _, late = await asyncio.wait(waiting, timeout=self.timeout)
                if late:
                    log.info("%d guests gave no diagnostics within %.1fs", len(late), self.timeout)

    def _forget(self, server_id: str, task: asyncio.Task[None]) -> None:
        if self._inflight.get(server_id) is task:
            del self._inflight[server_id]

    async def _sample(self, server_id: str) -> None:
        async with self._gate:
            try:
                raw = await self.driver.diagnostics(server_id)
            except DriverError as exc:
                log.debug("no diagnostics for %s: %s", server_id, exc)
                return
            except Exception:  # one guest's trouble must not fail a scrape
                log.exception("diagnostics of %s failed", server_id)
                return
        self._counters[server_id] = counters(raw)

    async def close(self) -> None:
        """Cancel the diagnostics still in flight (the service stops)."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
