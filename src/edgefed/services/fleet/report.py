"""One site's own report, the unit every aggregation collects: who and where it is,
its condition with the reason, capacity, servers, alarm counts and active alarms.

A site reports itself *degraded* when it has active critical or major alarms about
itself; ``peer_unreachable`` and ``sync_failing`` alarms are about another site (which
the aggregate shows offline, or which fails to take deliveries), so they do not degrade
the site that raised them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from edgefed.api.context import SiteContext
from edgefed.services.fleet.access import region_of
from edgefed.services.fleet.alarms import alarm_json
from edgefed.services.fleet.health import Condition
from edgefed.services.fleet.monitor import PEER_UNREACHABLE, SYNC_FAILING
from edgefed.services.fleet.telemetry import (
    host_capacity,
    rtt_row,
    servers_by_state,
    site_capacity,
    volume_pool,
    with_volumes,
)
from edgefed.store.alarms import SEVERITY_ORDER, AlarmFilter, AlarmRepository, Severity

MAX_ALARMS_PER_REPORT = 200
SERIOUS = (Severity.CRITICAL.value, Severity.MAJOR.value)
ABOUT_PEERS = (PEER_UNREACHABLE, SYNC_FAILING)


def location_of(ctx: SiteContext, site: str) -> dict[str, Any]:
    entry = ctx.fleet.entries.get(site) if ctx.fleet is not None else None
    location = entry.location if entry is not None else ctx.settings.location
    return dataclasses.asdict(location)


def labels_of(ctx: SiteContext, site: str) -> dict[str, str]:
    if ctx.fleet is not None and site in ctx.fleet.entries:
        return dict(ctx.fleet.labels_of(site))
    return dict(ctx.settings.labels)


def identity_card(ctx: SiteContext, site: str) -> dict[str, Any]:
    return {
        "name": site,
        "region": region_of(ctx, site),
        "location": location_of(ctx, site),
        "labels": labels_of(ctx, site),
    }


async def own_report(ctx: SiteContext) -> dict[str, Any]:
    repo = AlarmRepository(ctx.store)
    active = await repo.find(AlarmFilter(limit=MAX_ALARMS_PER_REPORT))
    active.sort(key=lambda a: (SEVERITY_ORDER.get(Severity(a.severity), 9), -a.raised_at))
    if len(active) < MAX_ALARMS_PER_REPORT:  # the list is complete: count it, no query
        counts = {s.value: 0 for s in Severity}
        for alarm in active:
            counts[alarm.severity] = counts.get(alarm.severity, 0) + 1
    else:
        counts = await repo.active_counts()
    serious = [a for a in active if a.severity in SERIOUS and a.type not in ABOUT_PEERS]
    if serious:
        status = Condition.DEGRADED
        reason = f"{len(serious)} critical/major alarm(s): {serious[0].reason}"
    else:
        status, reason = Condition.ONLINE, "answering"
    hosts = await host_capacity(ctx)
    return {
        **identity_card(ctx, ctx.name),
        "status": status.value,
        "reason": reason,
        "reported_by": ctx.name,
        "reported_at": ctx.clock(),
        "capacity": with_volumes(site_capacity(hosts), await volume_pool(ctx)),
        "hosts": len(hosts),
        "hosts_down": sum(1 for h in hosts if h["availability"] == "down"),
        "host_details": hosts,
        "servers": await servers_by_state(ctx),
        "alarms": counts,
        "active_alarms": [alarm_json(a, site=ctx.name) for a in active],
        "rtt_ms": rtt_row(ctx),
    }


def unreachable_report(
    ctx: SiteContext, site: str, *, status: Condition, reason: str
) -> dict[str, Any]:
    """What an aggregator says about a site it could not get a report from."""
    return {
        **identity_card(ctx, site),
        "status": status.value,
        "reason": reason,
        "reported_by": ctx.name,
        "reported_at": ctx.clock(),
        "capacity": None,
        "hosts": None,
        "hosts_down": None,
        "host_details": [],
        "servers": None,
        "alarms": None,
        "active_alarms": [],
        "rtt_ms": {},
    }


def totals(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Sums over the sites that reported themselves (unreachable ones add nothing)."""
    out: dict[str, Any] = {
        "sites": len(reports),
        "by_status": {c.value: 0 for c in Condition},
        "capacity": {k: {"total": 0, "used": 0} for k in ("vcpus", "ram_mb", "disk_gb")},
        "servers": {"total": 0, "by_state": {}},
        "alarms": {s.value: 0 for s in Severity},
        "hosts": 0,
    }
    for report in reports:
        out["by_status"][report["status"]] = out["by_status"].get(report["status"], 0) + 1
        if report.get("capacity"):
            for key, values in report["capacity"].items():
                slot = out["capacity"].setdefault(key, {"total": 0, "used": 0})
                slot["total"] += values["total"]
                slot["used"] += values["used"]
        if report.get("servers"):
            out["servers"]["total"] += report["servers"]["total"]
            for state, n in report["servers"]["by_state"].items():
                out["servers"]["by_state"][state] = out["servers"]["by_state"].get(state, 0) + n
        if report.get("alarms"):
            for severity, n in report["alarms"].items():
                out["alarms"][severity] = out["alarms"].get(severity, 0) + n
        out["hosts"] += report.get("hosts") or 0
    for values in out["capacity"].values():
        total = values["total"]
        values["percent"] = round(100.0 * values["used"] / total, 1) if total else 0.0
    return out
