"""Security groups (read-only: a default group per project, as Neutron creates it) and
quotas (a document per project, not records: hand-written routes)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.bodies import read_object
from edgefed.api.context import site_context
from edgefed.api.policy import require_admin
from edgefed.api.resource import READ_ONLY, Call, ProjectOwned
from edgefed.api.resource.routes import begin
from edgefed.api.responses import Json
from edgefed.core.errors import Forbidden
from edgefed.services.network.neutron import NEUTRON, NeutronResource, bad_input, select, standard
from edgefed.store.network import NetworkQuotas, SecurityGroupRecord, SecurityGroups

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
# The largest limit a 32-bit column holds (PostgreSQL's INTEGER).
MAX_LIMIT = 2**31 - 1


class SecurityGroup(NeutronResource[SecurityGroupRecord, SecurityGroups]):
    key = "security_group"
    collection_key = "security_groups"
    path = "/v2.0/security-groups"
    attributes = (("security_group_rules", "rules"),)
    id_param = "group_id"
    verbs = READ_ONLY
    # Only the owner project reads them (no role needed: the default group is made on
    # the first read of a project-scoped token).
    access = ProjectOwned[SecurityGroupRecord](project=lambda g: g.project_id)
    not_found_message = "Security group {id} does not exist"

    def repository(self, call: Call) -> SecurityGroups:
        return SecurityGroups(call.ctx.store, ensure_for=call.principal.project_id)

    def view(self, group: SecurityGroupRecord, call: Call) -> dict[str, Any]:
        return {**self.copy(group), "stateful": True, "shared": False, **standard(group)}


SECURITY_GROUP = SecurityGroup()


@router.get("/v2.0/security-group-rules")
async def list_security_group_rules(request: Request) -> Json:
    call = await begin(SECURITY_GROUP, request, "list")
    groups = SECURITY_GROUP.repository(call)
    visible = await SECURITY_GROUP.access.visible(call, await groups.list())
    return Json({"security_group_rules": select(call.query, [r for g in visible for r in g.rules])})


# -- quotas --------------------------------------------------------------------------------


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
