"""This site's telemetry as one JSON document: capacity and usage per site and host,
servers by state, request rates and latencies, RTTs to the other sites, alarm counts,
and sync queue depth, lag and per-peer delivery state when the sync service reports
them (``sync_health``; ``null`` on a site without it).

Capacity is what the scheduler sees: the hosts inventory's compute hosts (personality
``worker`` or ``edgeworker``), each the size its agent reported times the host's own
allocation ratios, or, while the inventory has none, the settings' ``compute_hosts``
times the site's ratios; usage is the sum of the live servers placed on the host (read
from compute's repository, so it never drifts from what the scheduler decides). The
rule is the compute scheduler's (services/compute/scheduler.py), which this room may
not import.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from edgefed.api.context import SiteContext
from edgefed.api.metrics import RequestMetrics
from edgefed.services.fleet.sync_health import read_sync_telemetry
from edgefed.store.alarms import AlarmRepository
from edgefed.store.compute import ServerRepository
from edgefed.store.inventory import HostRecord, InventoryRepository

RESOURCES = (("vcpus", "vcpus"), ("ram_mb", "ram_mb"), ("disk_gb", "disk_gb"))
COMPUTE_PERSONALITIES = ("worker", "edgeworker")


@dataclass(frozen=True, slots=True)
class ComputeHost:
    """A host the scheduler places servers on: what it may hand out, ratios applied."""

    name: str
    availability: str
    vcpus: int
    ram_mb: int
    disk_gb: int


def _from_inventory(host: HostRecord) -> ComputeHost:
    hw = host.hardware or {}
    disks = hw.get("disks") or []
    disk_gb = sum(float(d.get("size_gb") or 0) for d in disks if isinstance(d, dict))
    return ComputeHost(
        name=host.hostname,
        availability=host.availability,
        vcpus=int(int(hw.get("cpus") or 0) * host.cpu_allocation_ratio),
        ram_mb=int(int(hw.get("memory_mb") or 0) * host.ram_allocation_ratio),
        disk_gb=int(int(disk_gb) * host.disk_allocation_ratio),
    )


async def compute_hosts(ctx: SiteContext) -> list[ComputeHost]:
    """The inventory's compute hosts; the settings' while it has none."""
    enrolled = [
        h
        for h in await InventoryRepository(ctx.store).list_hosts()
        if h.personality in COMPUTE_PERSONALITIES
    ]
    if enrolled:
        return [_from_inventory(h) for h in sorted(enrolled, key=lambda h: h.hostname)]
    s = ctx.settings
    return [
        ComputeHost(
            name=host.name,
            availability="available",
            vcpus=int(host.vcpus * s.cpu_allocation_ratio),
            ram_mb=int(host.ram_mb * s.ram_allocation_ratio),
            disk_gb=int(host.disk_gb * s.disk_allocation_ratio),
        )
        for host in s.hosts
    ]


async def host_capacity(ctx: SiteContext) -> list[dict[str, Any]]:
    usages = await ServerRepository(ctx.store).host_usages()
    rows = []
    for host in await compute_hosts(ctx):
        used = usages.get(host.name)
        rows.append(
            {
                "name": host.name,
                "availability": host.availability,
                "servers": used.servers if used else 0,
                "vcpus": {"total": host.vcpus, "used": used.vcpus if used else 0},
                "ram_mb": {"total": host.ram_mb, "used": used.ram_mb if used else 0},
                "disk_gb": {"total": host.disk_gb, "used": used.disk_gb if used else 0},
            }
        )
    return rows


def site_capacity(hosts: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for key, _ in RESOURCES:
        total = sum(h[key]["total"] for h in hosts)
        used = sum(h[key]["used"] for h in hosts)
        out[key] = {
            "total": total,
            "used": used,
            "percent": round(100.0 * used / total, 1) if total else 0.0,
        }
    return out


async def volume_pool(ctx: SiteContext) -> dict[str, Any] | None:
    """The site's volume pool (None on a site without volumes)."""
    if ctx.volumes is None:
        return None
    return dataclasses.asdict(await ctx.volumes.pool())


def with_volumes(
    capacity: dict[str, dict[str, float]], pool: dict[str, Any] | None
) -> dict[str, dict[str, float]]:
    """The site's capacity, volume storage included (``volume_gb``: what volumes are
    sized to, of what they may add up to)."""
    if pool is None:
        return capacity
    total, used = pool["capacity_gb"], pool["allocated_gb"]
    percent = round(100.0 * used / total, 1) if total else 0.0
    return {**capacity, "volume_gb": {"total": total, "used": used, "percent": percent}}


async def servers_by_state(ctx: SiteContext) -> dict[str, Any]:
    states = await ServerRepository(ctx.store).count_by_vm_state()
    return {"total": sum(states.values()), "by_state": dict(sorted(states.items()))}


def rtt_row(ctx: SiteContext) -> dict[str, float]:
    if ctx.fleet is None:
        return {}
    return {k: round(v, 2) for k, v in sorted(ctx.fleet.rtt.get(ctx.name, {}).items())}


async def collect(ctx: SiteContext, metrics: RequestMetrics | None) -> dict[str, Any]:
    hosts = await host_capacity(ctx)
    pool = await volume_pool(ctx)
    return {
        "site": ctx.name,
        "time": ctx.clock(),
        "capacity": with_volumes(site_capacity(hosts), pool),
        "hosts": hosts,
        "volumes": pool,
        "servers": await servers_by_state(ctx),
        "requests": metrics.window() if metrics is not None else {},
        "rtt_ms": rtt_row(ctx),
        "alarms": await AlarmRepository(ctx.store).active_counts(),
        "sync": read_sync_telemetry(ctx),
    }
