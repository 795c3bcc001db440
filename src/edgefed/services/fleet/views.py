"""HTTP surface of fleet operations: this site's health and telemetry, the aggregated
fleet status and alarms (``?scope=``, else the request scope's ``fleet`` entry, else the
site's ``fleet_aggregate``), and ``/metrics`` in the Prometheus text format."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.context import SiteContext, site_context
from edgefed.api.metrics import RequestMetrics
from edgefed.api.remote import scope_entry
from edgefed.api.responses import Json
from edgefed.api.service import DeclaredRoute
from edgefed.services.fleet import telemetry
from edgefed.services.fleet.access import bound_regions, can_see, require_this_site
from edgefed.services.fleet.aggregate import aggregate
from edgefed.services.fleet.health import PeerHealth
from edgefed.services.fleet.monitor import HealthMonitor
from edgefed.services.fleet.report import own_report
from edgefed.store.alarms import SEVERITY_ORDER, Severity

router = APIRouter(route_class=DeclaredRoute)
ScopeParam = Annotated[str | None, Query(max_length=1000)]


def monitor_of(ctx: SiteContext) -> HealthMonitor | None:
    return ctx.slots.get(HealthMonitor)


def peer_health(ctx: SiteContext) -> dict[str, PeerHealth]:
    monitor = monitor_of(ctx)
    return monitor.watch.assess() if monitor is not None else {}


def metrics_of(request: Request) -> RequestMetrics | None:
    return site_context(request).request_metrics


@router.get("/edge/v1/health")
async def health(
    request: Request, principal: Annotated[Principal, Depends(current_principal)]
) -> Json:
    ctx = site_context(request)
    require_this_site(ctx, principal)
    report = await own_report(ctx)
    # A region operator sees this site's peers in its regions only.
    peers = [h.to_json() for h in peer_health(ctx).values() if can_see(ctx, principal, h.name)]
    return Json(
        {
            "health": {
                "site": ctx.name,
                "status": report["status"],
                "reason": report["reason"],
                "alarms": report["alarms"],
                "peers": sorted(peers, key=lambda p: p["name"]),
            }
        }
    )


@router.get("/edge/v1/telemetry")
async def site_telemetry(
    request: Request, principal: Annotated[Principal, Depends(current_principal)]
) -> Json:
    ctx = site_context(request)
    require_this_site(ctx, principal)
    body = await telemetry.collect(ctx, metrics_of(request))
    body["rtt_ms"] = {k: v for k, v in body["rtt_ms"].items() if can_see(ctx, principal, k)}
    return Json({"telemetry": body})


async def _aggregate(
    request: Request, principal: Principal, scope: str | None, nested: bool, via: str | None
) -> dict[str, Any]:
    ctx = site_context(request)
    bound_regions(principal)  # 403 for callers with neither admin nor a region role
    if scope is None and not nested:
        # ``X-Scope: {fleet: @country=US}`` routed the view to a site of the scope (or
        # to every one): the entry is the list of sites there too, not that site's view.
        entry = scope_entry(request.scope, "fleet")
        scope = str(entry) if entry is not None else None
    explicit = scope is not None and not nested
    if nested:
        scope = ctx.settings.fleet_aggregate
    elif scope is None:
        scope = ctx.settings.fleet_aggregate or "*"
    chain = tuple(s for s in (via or "").split(",") if s)
    result = await aggregate(
        ctx,
        principal,
        scope=scope,
        explicit=explicit,
        peer_health=peer_health(ctx),
        via=chain,
        timeout=max(1.0, min(5.0, ctx.settings.peer_timeout_seconds)),
    )
    return result.to_json(ctx)


@router.get("/edge/v1/fleet/status")
async def fleet_status(
    request: Request,
    principal: Annotated[Principal, Depends(current_principal)],
    scope: ScopeParam = None,
    nested: bool = False,
    via: Annotated[str | None, Query(max_length=4000)] = None,
) -> Json:
    return Json({"fleet_status": await _aggregate(request, principal, scope, nested, via)})


@router.get("/edge/v1/fleet/alarms")
async def fleet_alarms(
    request: Request,
    principal: Annotated[Principal, Depends(current_principal)],
    scope: ScopeParam = None,
    severity: Severity | None = None,
    type: Annotated[str | None, Query(max_length=64)] = None,
) -> Json:
    status = await _aggregate(request, principal, scope, False, None)
    alarms = [
        alarm
        for site in status["sites"]
        for alarm in site["active_alarms"]
        if (severity is None or alarm["severity"] == severity.value)
        and (type is None or alarm["type"] == type)
    ]
    alarms.sort(key=lambda a: (SEVERITY_ORDER.get(Severity(a["severity"]), 9), a["site"]))
    sites = [
        {"name": s["name"], "status": s["status"], "reason": s["reason"]} for s in status["sites"]
    ]
    return Json({"alarms": alarms, "sites": sites})


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    # Imported here, by the scrape: prometheus_client is ≈ 0.9 MiB an idle site never
    # needs otherwise (api/metrics.py).
    from edgefed.services.fleet.prometheus import CONTENT_TYPE, exposition

    ctx = site_context(request)
    metrics = metrics_of(request)
    snapshot = await telemetry.collect(ctx, metrics)
    guests = await ctx.guest_metrics.samples() if ctx.guest_metrics is not None else ()
    body = exposition(snapshot, peer_health(ctx), guests)
    if metrics is not None:
        body = metrics.exposition() + body
    return Response(content=body, media_type=CONTENT_TYPE)
