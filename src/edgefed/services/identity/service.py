"""The identity service (Keystone v3) of one site: its routes and its start-up.

Routes are split by resource into sibling modules; this module only composes them.
On start the service bootstraps the admin (``bootstrap.py``) before any other service
starts, so they can all rely on it.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter

from edgefed.api.context import SiteContext
from edgefed.api.service import CatalogEntry, ServiceSpec, routes_of
from edgefed.services.identity import (
    app_credentials,
    assignment_list,
    assignments,
    domains,
    endpoints,
    groups,
    mappings,
    projects,
    regions,
    roles,
    tokens,
    users,
    versions,
)
from edgefed.services.identity.authority import IdentityAuthority
from edgefed.services.identity.bootstrap import bootstrap
from edgefed.services.identity.revoking import IdentityRevoker
from edgefed.services.identity.state import state_for
from edgefed.store.revocations import RevocationRepository


def build_router() -> APIRouter:
    """Every identity route, the token routes first: validation is the hot path, and
    a request's route is the first that matches."""
    router = APIRouter()
    versions.add_routes(router)
    modules = (
        domains,
        projects,
        users,
        groups,
        roles,
        assignments,
        assignment_list,
        regions,
        endpoints,
        app_credentials,
        mappings,
    )
    return APIRouter(routes=routes_of(tokens.router, router, *(m.router for m in modules)))


async def on_start(ctx: SiteContext) -> None:
    state = state_for(ctx)
    ctx.revoker = IdentityRevoker(state)
    await bootstrap(ctx)
    await mappings.install_config_mappings(ctx)
    ctx.authority = IdentityAuthority(state)
    await prune_revocations(ctx)


async def prune_revocations(ctx: SiteContext) -> None:
    """Forget revocation events that can no longer match an unexpired token.

    A token lives at most ``token_ttl_seconds`` (re-scoping keeps the parent's expiry),
    so an event older than that (plus a day of slack for clock skew) is dead weight.
    """
    horizon = ctx.clock() - ctx.settings.token_ttl_seconds - 86400
    await RevocationRepository(ctx.store).prune(dt.datetime.fromtimestamp(horizon, dt.UTC))


def build() -> ServiceSpec:
    return ServiceSpec(
        name="identity",
        prefix="/identity",
        router=build_router(),
        catalog=(CatalogEntry(type="identity", name="keystone", path="/identity"),),
        on_start=on_start,
    )
