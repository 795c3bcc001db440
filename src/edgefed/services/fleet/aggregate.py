"""Aggregation: one site collects the reports of a set of sites (a scope) and of the
aggregators under it, and says for every site whether it is online, degraded or
offline, and why.

Why not the scope router's ``&`` fan-out: a view of the fleet must still answer when
some sites are down (that is when it is needed most), while the router's multi-site
reads fail as a whole when a site fails. So the aggregator asks each site in the scope
itself, in parallel, with a short deadline, and does not even try a site its health
monitor already knows is offline: that site is reported offline with the reason.

Hierarchy: each site is asked for its ``/edge/v1/fleet/status?nested=1``; a site
configured as an aggregator (``fleet_aggregate``) answers with its own report plus
those it collects, a plain site with its own report only. ``via`` carries the chain
of aggregators already asked, so a cycle in the configuration cannot loop. When the
same site arrives twice, its own report wins over what an aggregator says about it.

An explicit scope (``?scope=@country=US``) is the list: the site asked appears only if
the scope names it, and an aggregator's reports of sites this site knows to be outside
the scope are left out (a site only the aggregator's registry holds cannot be judged
here, and came through an aggregator the scope names). Without one, the site reports
itself and what it aggregates (``fleet_aggregate``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from edgefed.api.auth import Principal
from edgefed.api.context import SiteContext
from edgefed.api.remote import FORWARDED_HEADER, describe_http_error
from edgefed.core.errors import BadRequest, ValidationFailed
from edgefed.core.scope import parse_expr
from edgefed.core.scope_resolve import sites_of
from edgefed.services.fleet.access import can_see, require_all
from edgefed.services.fleet.health import Condition, PeerHealth
from edgefed.services.fleet.report import own_report, totals, unreachable_report

STATUS_PATH = "/edge/v1/fleet/status"
MAX_PARALLEL = 64
MAX_DEPTH = 4


@dataclass
class Aggregate:
    reporter: str
    scope: str | None
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    aggregators: list[dict[str, Any]] = field(default_factory=list)

    def offer(self, report: dict[str, Any]) -> None:
        name = report["name"]
        current = self.reports.get(name)
        own = report.get("reported_by") == name
        if current is None or (own and current.get("reported_by") != name):
            self.reports[name] = report

    def to_json(self, ctx: SiteContext) -> dict[str, Any]:
        sites = sorted(self.reports.values(), key=lambda r: r["name"])
        names = [s["name"] for s in sites]
        rtt = {}
        if ctx.fleet is not None:
            for a in names:
                row = {b: round(ms, 2) for b, ms in ctx.fleet.rtt.get(a, {}).items() if b in names}
                if row:
                    rtt[a] = row
        return {
            "reporter": self.reporter,
            "scope": self.scope,
            "sites": sites,
            "totals": totals(sites),
            "aggregators": self.aggregators,
            "rtt_ms": rtt,
        }


def resolve_targets(
    ctx: SiteContext, principal: Principal, scope: str | None, *, explicit: bool
) -> list[str]:
    if not scope or ctx.fleet is None:
        return [ctx.name]
    try:
        names = list(sites_of(parse_expr(scope), ctx.fleet))
    except BadRequest as exc:
        raise ValidationFailed(f"Invalid scope {scope!r}: {exc.message}", field="scope") from exc
    if explicit:
        require_all(ctx, principal, names, "look at these sites")
    return [n for n in names if can_see(ctx, principal, n)]


async def aggregate(
    ctx: SiteContext,
    principal: Principal,
    *,
    scope: str | None,
    explicit: bool,
    peer_health: dict[str, PeerHealth],
    via: tuple[str, ...] = (),
    timeout: float = 3.0,
) -> Aggregate:
    result = Aggregate(reporter=ctx.name, scope=scope)
    targets = resolve_targets(ctx, principal, scope, explicit=explicit)
    known = set(ctx.fleet.site_names()) if ctx.fleet is not None else {ctx.name}

    def wanted(site: str) -> bool:
        in_scope = not explicit or site in targets or site not in known
        return in_scope and can_see(ctx, principal, site)

    if wanted(ctx.name):
        report = await own_report(ctx)
        # Its RTT row names every peer: a region operator sees those of its regions.
        report["rtt_ms"] = {k: v for k, v in report["rtt_ms"].items() if can_see(ctx, principal, k)}
        result.offer(report)
    chain = (*via, ctx.name)
    gate = asyncio.Semaphore(MAX_PARALLEL)

    async def ask(site: str) -> None:
        health = peer_health.get(site)
        if health is not None and health.status is Condition.OFFLINE:
            result.offer(
                unreachable_report(ctx, site, status=Condition.OFFLINE, reason=health.reason)
            )
            return
        url = ctx.peers.get(site)
        if url is None:
            result.offer(
                unreachable_report(
                    ctx, site, status=Condition.OFFLINE, reason="not an active fleet member"
                )
            )
            return
        async with gate:
            try:
                r = await ctx.http.get(
                    url + STATUS_PATH,
                    params={"nested": "1", "via": ",".join(chain)},
                    headers={"X-Auth-Token": principal.token, FORWARDED_HEADER: ctx.name},
                    timeout=timeout,
                )
            except httpx.HTTPError as exc:
                result.offer(
                    unreachable_report(
                        ctx,
                        site,
                        status=Condition.OFFLINE,
                        reason=f"status request failed: {describe_http_error(exc)}",
                    )
                )
                return
        if r.status_code != 200:
            result.offer(
                unreachable_report(
                    ctx,
                    site,
                    status=Condition.DEGRADED,
                    reason=f"status request answered HTTP {r.status_code}",
                )
            )
            return
        try:
            body = orjson.loads(r.content).get("fleet_status", {})
        except (orjson.JSONDecodeError, AttributeError):
            result.offer(
                unreachable_report(
                    ctx, site, status=Condition.DEGRADED, reason="status answer is not a report"
                )
            )
            return
        children = body.get("sites", [])
        for report in children:
            if isinstance(report, dict) and wanted(str(report.get("name"))):
                result.offer(_with_link_health(report, health))
        if len(children) > 1 or body.get("aggregators"):
            result.aggregators.append({"name": site, "sites": len(children), "status": "online"})

    if len(chain) <= MAX_DEPTH:
        await asyncio.gather(*(ask(s) for s in targets if s != ctx.name and s not in via))
    return result


def _with_link_health(report: dict[str, Any], health: PeerHealth | None) -> dict[str, Any]:
    """A report that answered, marked degraded when this site sees a slow link to it."""
    if (
        health is not None
        and health.status is Condition.DEGRADED
        and report.get("name") == health.name
        and report.get("status") == Condition.ONLINE.value
    ):
        return {**report, "status": Condition.DEGRADED.value, "reason": health.reason}
    return report
