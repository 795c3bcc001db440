"""Security groups (a default group per project, as Neutron creates it) and quotas."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.policy import require_admin
from edgefed.api.responses import Json
from edgefed.core.errors import Forbidden, NotFound
from edgefed.services.network.common import (
    bad_input,
    pick,
    read_resource,
    repo,
    security_group_view,
    select,
)

router = APIRouter()

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


async def _visible_groups(request: Request, principal: Principal) -> list[dict[str, Any]]:
    networks = repo(request)
    if principal.project_id:
        await networks.ensure_default_security_group(principal.project_id)
    return [
        security_group_view(g)
        for g in await networks.list_security_groups()
        if principal.is_admin or g.project_id == principal.project_id
    ]


@router.get("/v2.0/security-groups")
async def list_security_groups(
    request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    return Json({"security_groups": select(request, await _visible_groups(request, principal))})


@router.get("/v2.0/security-groups/{group_id}")
async def show_security_group(
    group_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    for view in await _visible_groups(request, principal):
        if view["id"] == group_id:
            return Json({"security_group": pick(request, view)})
    raise NotFound(f"Security group {group_id} does not exist", kind="SecurityGroupNotFound")


@router.get("/v2.0/security-group-rules")
async def list_security_group_rules(
    request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    rules = [
        r for g in await _visible_groups(request, principal) for r in g["security_group_rules"]
    ]
    return Json({"security_group_rules": select(request, rules)})


def _may_read_quota(principal: Principal, project_id: str) -> None:
    if not principal.is_admin and principal.project_id != project_id:
        raise Forbidden("The policy does not allow reading another project's quota.")


async def _limits(request: Request, project_id: str) -> dict[str, int]:
    return {**QUOTA_DEFAULTS, **await repo(request).quota_limits(project_id)}


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
    used = await repo(request).count_by_project(project_id)
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
    data = await read_resource(request, "quota")
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
        updates[key] = number
    await repo(request).set_quota_limits(project_id, updates)
    return Json({"quota": await _limits(request, project_id)})


@router.delete("/v2.0/quotas/{project_id}", status_code=204)
async def reset_quota(
    project_id: str, request: Request, principal: Principal = Depends(current_principal)
) -> Response:
    require_admin(principal, "delete_quota")
    await repo(request).reset_quota(project_id)
    return Response(status_code=204)
