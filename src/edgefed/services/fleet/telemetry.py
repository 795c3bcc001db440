"""This site's telemetry as one JSON document: capacity and usage per site and host,
servers by state, request rates and latencies, RTTs to the other sites, alarm counts,
and sync queue depth, lag and per-peer delivery state when the sync service reports
them (``sync_health``; ``null`` on a site without it).

Capacity is what the scheduler sees: each compute host's physical size times the
site's allocation ratios; usage is the sum of the live servers placed on the host
(read from compute's repository, so it never drifts from what the scheduler decides).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from edgefed.api.context import SiteContext
from edgefed.api.metrics import RequestMetrics
from edgefed.services.fleet.sync_health import read_sync_telemetry
from edgefed.store.alarms import AlarmRepository
from edgefed.store.compute import ServerRepository
from edgefed.store.inventory import InventoryRepository

RESOURCES = (("vcpus", "vcpus"), ("ram_mb", "ram_mb"), ("disk_gb", "disk_gb"))


async def host_capacity(ctx: SiteContext) -> list[dict[str, Any]]:
    s = ctx.settings
    usages = await ServerRepository(ctx.store).host_usages()
    availability = {
        h.hostname: h.availability for h in await InventoryRepository(ctx.store).list_hosts()
    }
    rows = []
    for host in s.hosts:
        used = usages.get(host.name)
        rows.append(
            {
                "name": host.name,
                "availability": availability.get(host.name, "available"),
                "servers": used.servers if used else 0,
                "vcpus": {
                    "total": int(host.vcpus * s.cpu_allocation_ratio),
                    "used": used.vcpus if used else 0,
                },
                "ram_mb": {
                    "total": int(host.ram_mb * s.ram_allocation_ratio),
                    "used": used.ram_mb if used else 0,
                },
                "disk_gb": {
                    "total": int(host.disk_gb * s.disk_allocation_ratio),
                    "used": used.disk_gb if used else 0,
                },
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


async def servers_by_state(ctx: SiteContext) -> dict[str, Any]:
    servers = await ServerRepository(ctx.store).list_all(project_id=None)
    states = Counter(s.vm_state for s in servers)
    return {"total": len(servers), "by_state": dict(sorted(states.items()))}


def rtt_row(ctx: SiteContext) -> dict[str, float]:
    if ctx.fleet is None:
        return {}
    return {k: round(v, 2) for k, v in sorted(ctx.fleet.rtt.get(ctx.name, {}).items())}


async def collect(ctx: SiteContext, metrics: RequestMetrics | None) -> dict[str, Any]:
    hosts = await host_capacity(ctx)
    return {
        "site": ctx.name,
        "time": ctx.clock(),
        "capacity": site_capacity(hosts),
        "hosts": hosts,
        "servers": await servers_by_state(ctx),
        "requests": metrics.window() if metrics is not None else {},
        "rtt_ms": rtt_row(ctx),
        "alarms": await AlarmRepository(ctx.store).active_counts(),
        "sync": read_sync_telemetry(ctx),
    }
