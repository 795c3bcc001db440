"""Network quotas: a document per project, not records (hand-written routes), and the
limit a create checks against."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.bodies import read_object
from edgefed.api.context import site_context
from edgefed.api.policy import require_admin
from edgefed.api.responses import Json
from edgefed.api.service import DeclaredRoute
from edgefed.core.errors import Forbidden
from edgefed.services.network.neutron import NEUTRON, bad_input
from edgefed.store.engine import Store
from edgefed.store.network import NetworkQuotas

router = APIRouter(route_class=DeclaredRoute)

QUOTA_DEFAULTS = {
    "network": 100,
    "subnet": 100,
    "port": 500,
    "router": 10,
    "floatingip": 50,
    "security_group": 10,
    "security_group_rule": 100,
    "rbac_policy": 10,
    "subnetpool": -1,
}
# The largest limit a 32-bit column holds (PostgreSQL's INTEGER).
MAX_LIMIT = 2**31 - 1


async def limit_of(store: Store, project_id: str, resource: str) -> int:
    """The project's limit for ``resource`` (-1: none)."""
    limits = await NetworkQuotas(store).limits(project_id)
    return limits.get(resource, QUOTA_DEFAULTS[resource])


def _quotas(request: Request) -> NetworkQuotas:
    return NetworkQuotas(site_context(request).store)


def _may_read_quota(principal: Principal, project_id: str) -> None:
    if not principal.is_admin and principal.project_id != project_id:
        raise Forbidden("The policy does not allow reading another project's quota.")


async def _limits(request: Request, project_id: str) -> dict[str, int]:
    return {**QUOTA_DEFAULTS, **await _quotas(request).limits(project_id)}


@router.get("/v2.0/quotas")
async def list_quotas(request: Request, principal: Principal = Depends(current_principal)) -> Json:
    require_admin(principal, "get_quota")
    return Json({"quotas": []})


@router.get("/v2.0/quotas/{project_id}/default")
async def default_quota(
    project_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    return Json({"quota": dict(QUOTA_DEFAULTS)})


@router.get("/v2.0/quotas/{project_id}/details")
async def quota_details(
    project_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    _may_read_quota(principal, project_id)
    limits = await _limits(request, project_id)
    used = await _quotas(request).usage(project_id)
    return Json(
        {
            "quota": {
                k: {"limit": v, "used": used.get(k, 0), "reserved": 0} for k, v in limits.items()
            }
        }
    )


@router.get("/v2.0/quotas/{project_id}")
async def show_quota(
    project_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    _may_read_quota(principal, project_id)
    return Json({"quota": await _limits(request, project_id)})


@router.put("/v2.0/quotas/{project_id}")
async def update_quota(
    project_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    require_admin(principal, "update_quota")
    data = await read_object(request, NEUTRON.body, key="quota")
    updates: dict[str, int] = {}
    for key, value in data.items():
        if key not in QUOTA_DEFAULTS:
            raise bad_input(f"Unrecognized attribute(s) '{key}'")
        try:
            number = int(value)
        except (TypeError, ValueError) as exc:
            raise bad_input(f"'{value}' is not an integer (field '{key}')") from exc
        if number < -1:
            raise bad_input(f"'{number}' should be greater than or equal to -1 (field '{key}')")
        if number > MAX_LIMIT:
            raise bad_input(f"'{number}' should be at most {MAX_LIMIT} (field '{key}')")
        updates[key] = number
    await _quotas(request).set_limits(project_id, updates)
    return Json({"quota": await _limits(request, project_id)})


@router.delete("/v2.0/quotas/{project_id}", status_code=204)
async def reset_quota(
    project_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Response:
    require_admin(principal, "delete_quota")
    await _quotas(request).reset(project_id)
    return Response(status_code=204)
