"""HTTP routes of the hosts inventory under ``/edge/v1/hosts``.

Operators (admin role) manage hosts and enrollment tokens; host agents call the two
``/agent`` routes, the first with a one-time enrollment token, the next ones with the
per-host credential that enrollment returned.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.context import site_context
from edgefed.api.policy import require_admin
from edgefed.api.responses import Json
from edgefed.services.inventory.operations import CREDENTIAL_HEADER, HostInventory
from edgefed.services.inventory.views import (
    EnrollRequest,
    HeartbeatRequest,
    HostCreate,
    HostUpdate,
    LabelsUpdate,
    TokenCreate,
    UpgradeRequest,
    host_view,
    token_view,
)

router = APIRouter()


def inventory(request: Request) -> HostInventory:
    return HostInventory(site_context(request))


async def admin(principal: Principal = Depends(current_principal)) -> Principal:
    require_admin(principal, "hosts inventory")
    return principal


# Enrollment tokens (declared before /{host} so their paths win) ---------------------


@router.post("/enrollment-tokens", status_code=201, dependencies=[Depends(admin)])
async def create_token(body: TokenCreate, request: Request) -> Json:
    inv = inventory(request)
    record, secret = await inv.create_token(body)
    view = token_view(record, now=inv.ctx.clock())
    return Json({"enrollment_token": {**view, "token": secret}}, status_code=201)


@router.get("/enrollment-tokens", dependencies=[Depends(admin)])
async def list_tokens(request: Request) -> Json:
    inv = inventory(request)
    now = inv.ctx.clock()
    return Json(
        {"enrollment_tokens": [token_view(t, now=now) for t in await inv.repo.list_tokens()]}
    )


@router.delete("/enrollment-tokens/{token_id}", status_code=204, dependencies=[Depends(admin)])
async def revoke_token(token_id: str, request: Request) -> Response:
    await inventory(request).revoke_token(token_id)
    return Response(status_code=204)


# Host agents ------------------------------------------------------------------------


@router.post("/agent/enroll", status_code=201)
async def enroll(body: EnrollRequest, request: Request) -> Json:
    inv = inventory(request)
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
    inv = inventory(request)
    host = await inv.authenticate_agent(request.headers.get(CREDENTIAL_HEADER))
    host = await inv.heartbeat(host, hardware=body.hardware)
    return Json(
        {
            "host": host_view(host),
            "heartbeat_timeout_seconds": inv.ctx.settings.host_heartbeat_timeout_seconds,
        }
    )


# Hosts ------------------------------------------------------------------------------


@router.get("", dependencies=[Depends(admin)])
async def list_hosts(request: Request, personality: str | None = None) -> Json:
    hosts = await inventory(request).list_hosts(personality=personality)
    return Json({"hosts": [host_view(h) for h in hosts]})


@router.post("", status_code=201, dependencies=[Depends(admin)])
async def add_host(body: HostCreate, request: Request) -> Json:
    host = await inventory(request).add(body)
    return Json({"host": host_view(host)}, status_code=201)


@router.get("/{host}", dependencies=[Depends(admin)])
async def show_host(host: str, request: Request) -> Json:
    return Json({"host": host_view(await inventory(request).get(host))})


@router.patch("/{host}", dependencies=[Depends(admin)])
async def update_host(host: str, body: HostUpdate, request: Request) -> Json:
    return Json({"host": host_view(await inventory(request).update(host, body))})


@router.delete("/{host}", status_code=204, dependencies=[Depends(admin)])
async def delete_host(host: str, request: Request) -> Response:
    await inventory(request).delete(host)
    return Response(status_code=204)


@router.delete("/{host}/agent", dependencies=[Depends(admin)])
async def reset_agent(host: str, request: Request) -> Json:
    """Forget the host's agent credential: only a new enrollment (a token made for this
    hostname) brings an agent back."""
    return Json({"host": host_view(await inventory(request).reset_agent(host))})


@router.post("/{host}/lock", dependencies=[Depends(admin)])
async def lock_host(host: str, request: Request) -> Json:
    return Json({"host": host_view(await inventory(request).lock(host))})


@router.post("/{host}/unlock", dependencies=[Depends(admin)])
async def unlock_host(host: str, request: Request) -> Json:
    return Json({"host": host_view(await inventory(request).unlock(host))})


@router.post("/{host}/upgrade", dependencies=[Depends(admin)])
async def upgrade_host(host: str, body: UpgradeRequest, request: Request) -> Json:
    return Json({"host": host_view(await inventory(request).upgrade(host, load=body.load))})


@router.post("/{host}/labels", dependencies=[Depends(admin)])
async def label_host(host: str, body: LabelsUpdate, request: Request) -> Json:
    return Json({"host": host_view(await inventory(request).set_labels(host, body))})
