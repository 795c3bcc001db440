"""HTTP routes of the hosts inventory under ``/edge/v1/hosts``.

Operators (admin role) manage hosts (``hosts.Host``, a declared resource) and
enrollment tokens; host agents call the two ``/agent`` routes, the first with a
one-time enrollment token, the next ones with the per-host credential that enrollment
returned. The token and agent routes come first: their paths would otherwise be read
as a host's.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.context import site_context
from edgefed.api.policy import require_admin
from edgefed.api.responses import Json
from edgefed.api.service import DeclaredRoute
from edgefed.services.inventory import agent_channel
from edgefed.services.inventory.hosts import HOST, host_view
from edgefed.services.inventory.operations import CREDENTIAL_HEADER, HostInventory
from edgefed.services.inventory.views import (
    EnrollRequest,
    HeartbeatRequest,
    TokenCreate,
    token_view,
)

router = APIRouter(route_class=DeclaredRoute)


async def admin(principal: Principal = Depends(current_principal)) -> Principal:
    require_admin(principal, "hosts inventory")
    return principal


# Enrollment tokens ------------------------------------------------------------------


@router.post("/enrollment-tokens", status_code=201, dependencies=[Depends(admin)])
async def create_token(body: TokenCreate, request: Request) -> Json:
    inv = HostInventory(site_context(request))
    record, secret = await inv.create_token(body)
    view = token_view(record, now=inv.ctx.clock())
    return Json({"enrollment_token": {**view, "token": secret}}, status_code=201)


@router.get("/enrollment-tokens", dependencies=[Depends(admin)])
async def list_tokens(request: Request) -> Json:
    inv = HostInventory(site_context(request))
    now = inv.ctx.clock()
    return Json({"enrollment_tokens": [token_view(t, now=now) for t in await inv.tokens.list()]})


@router.delete("/enrollment-tokens/{token_id}", status_code=204, dependencies=[Depends(admin)])
async def revoke_token(token_id: str, request: Request) -> Response:
    await HostInventory(site_context(request)).revoke_token(token_id)
    return Response(status_code=204)


# Host agents ------------------------------------------------------------------------


@router.post("/agent/enroll", status_code=201)
async def enroll(body: EnrollRequest, request: Request) -> Json:
    inv = HostInventory(site_context(request))
    host, credential = await inv.enroll(body)
    return Json(
        {
            "host": host_view(host),
            "credential": credential,
            "heartbeat_timeout_seconds": inv.ctx.settings.host_heartbeat_timeout_seconds,
        },
        status_code=201,
    )


@router.post("/agent/heartbeat")
async def heartbeat(body: HeartbeatRequest, request: Request) -> Json:
    inv = HostInventory(site_context(request))
    host = await inv.authenticate_agent(request.headers.get(CREDENTIAL_HEADER))
    host = await inv.heartbeat(host, hardware=body.hardware)
    return Json(
        {
            "host": host_view(host),
            "heartbeat_timeout_seconds": inv.ctx.settings.host_heartbeat_timeout_seconds,
        }
    )


# The command channel (agent_channel.py), then hosts --------------------------------

router.routes.extend(agent_channel.router.routes)
router.routes.extend(HOST.routes())
