"""The identity service (Keystone v3) of one site: its routes and its start-up.

Each resource is declared in its own module (``projects.PROJECT``…) and its routes are
built by the resource kit; the token routes are written by hand (``tokens``). This
module only composes them.
On start the service bootstraps the admin (``bootstrap.py``) before any other service
starts, so they can all rely on it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter

from edgefed.api.context import SiteContext
from edgefed.api.resource import Resource
from edgefed.api.service import CatalogEntry, DeclaredRoute, ServiceSpec, routes_of
from edgefed.services.identity import mappings, roles, tokens, versions
from edgefed.services.identity.app_credentials import APP_CREDENTIAL
from edgefed.services.identity.assignment_list import ROLE_ASSIGNMENT
from edgefed.services.identity.assignments import GRANTS
from edgefed.services.identity.authority import IdentityAuthority
from edgefed.services.identity.bootstrap import bootstrap
from edgefed.services.identity.domains import DOMAIN
from edgefed.services.identity.endpoints import ENDPOINT, SERVICE
from edgefed.services.identity.groups import GROUP
from edgefed.services.identity.members import MEMBER
from edgefed.services.identity.projects import PROJECT
from edgefed.services.identity.regions import REGION
from edgefed.services.identity.revoking import IdentityRevoker
from edgefed.services.identity.roles import ROLE
from edgefed.services.identity.state import state_for
from edgefed.services.identity.users import USER
from edgefed.store.revocations import RevocationRepository

# The declared resources, the busiest first (a request's route is the first that matches).
RESOURCES: tuple[Resource[Any, Any], ...] = (
    PROJECT,
    USER,
    ROLE,
    DOMAIN,
    GROUP,
    MEMBER,
    *GRANTS,
    ROLE_ASSIGNMENT,
    REGION,
    SERVICE,
    ENDPOINT,
    APP_CREDENTIAL,
    mappings.MAPPING,
)


def build_router() -> APIRouter:
    """Every identity route, the token routes first: validation is the hot path, and
    a request's route is the first that matches."""
    router = APIRouter(route_class=DeclaredRoute)
    versions.add_routes(router)
    return APIRouter(
        routes=[
            *routes_of(tokens.router, router, roles.router),
            *(route for resource in RESOURCES for route in resource.routes()),
        ]
    )


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
