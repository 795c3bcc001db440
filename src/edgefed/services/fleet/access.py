"""Who sees which sites: a system admin sees every site, a region operator only its own.

A region operator is a user holding a role named ``region:<value>`` (for example
``region:eu``, created with Keystone's role API and granted on a project) and not the
``admin`` role. Such a token sees and acts on the sites whose ``region`` label (or
location region) is one of its values, and nothing else: per-site endpoints answer
403 at a site outside the region, aggregated views leave other sites out, and a scope
that names a site outside the region is refused with a 403 that names those sites.
Any other caller (no admin, no region role) gets 403 on fleet operations.
"""

from __future__ import annotations

from collections.abc import Iterable

from edgefed.api.auth import Principal
from edgefed.api.context import SiteContext
from edgefed.api.policy import region_roles
from edgefed.core.errors import Forbidden


def bound_regions(principal: Principal) -> frozenset[str] | None:
    """The regions the caller is bound to, or None for every site (admin)."""
    if principal.is_admin:
        return None
    regions = region_roles(principal)
    if not regions:
        raise Forbidden(
            "Fleet operations need the admin role or a region operator role (region:<name>)."
        )
    return regions


def region_of(ctx: SiteContext, site: str) -> str:
    if ctx.fleet is not None and site in ctx.fleet.entries:
        return ctx.fleet.labels_of(site).get("region", "")
    if site == ctx.name:
        return ctx.settings.labels.get("region") or ctx.settings.location.region
    return ""


def can_see(ctx: SiteContext, principal: Principal, site: str) -> bool:
    regions = bound_regions(principal)
    return regions is None or region_of(ctx, site) in regions


def visible(ctx: SiteContext, principal: Principal, sites: Iterable[str]) -> list[str]:
    return [s for s in sites if can_see(ctx, principal, s)]


def require_this_site(ctx: SiteContext, principal: Principal) -> None:
    """Per-site endpoints: the caller must be allowed to see this site."""
    if not can_see(ctx, principal, ctx.name):
        raise Forbidden(
            f"Site {ctx.name} (region {region_of(ctx, ctx.name) or 'none'}) is outside "
            f"the region(s) of this operator: {', '.join(sorted(bound_regions(principal) or ()))}."
        )


def require_all(ctx: SiteContext, principal: Principal, sites: Iterable[str], action: str) -> None:
    """Refuse a scope that reaches a site the caller may not see, naming those sites."""
    outside = sorted(s for s in sites if not can_see(ctx, principal, s))
    if outside:
        regions = ", ".join(sorted(bound_regions(principal) or ()))
        raise Forbidden(
            f"Cannot {action}: site(s) {', '.join(outside)} are outside the region(s) "
            f"of this operator ({regions}).",
            sites=outside,
        )
