"""Flavor access lists: which projects see a private flavor (admins only).

``GET /flavors/{id}/os-flavor-access`` and the ``addTenantAccess`` /
``removeTenantAccess`` actions. A public flavor has no list (404 to read it, 409 to
change it), as in Nova.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.requests import Request

from edgefed.api.auth import Principal, current_principal
from edgefed.api.policy import require_admin
from edgefed.api.responses import Json
from edgefed.core.errors import BadRequest, Conflict, NotFound, ValidationFailed
from edgefed.services.compute.body import read_json, req_str
from edgefed.services.compute.lookups import visible_flavor
from edgefed.services.compute.microversion import MicroversionRoute
from edgefed.services.compute.state import ComputeState, compute_state
from edgefed.store.compute import FlavorRecord

router = APIRouter(route_class=MicroversionRoute)


async def _access_body(state: ComputeState, flavor: FlavorRecord) -> Json:
    projects = await state.flavors.access_list(flavor.id)
    return Json({"flavor_access": [{"flavor_id": flavor.id, "tenant_id": p} for p in projects]})


@router.get("/v2.1/flavors/{flavor_id}/os-flavor-access")
async def list_access(
    flavor_id: str,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    require_admin(principal, "os_compute_api:os-flavor-access")
    flavor = await visible_flavor(state, principal, flavor_id)
    if flavor.is_public:
        raise NotFound("Access list not available for public flavors.")
    return await _access_body(state, flavor)


@router.post("/v2.1/flavors/{flavor_id}/action")
async def flavor_action(
    flavor_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    body = await read_json(request)
    if len(body) != 1 or next(iter(body)) not in ("addTenantAccess", "removeTenantAccess"):
        raise BadRequest("Unknown flavor action: use addTenantAccess or removeTenantAccess")
    action, data = next(iter(body.items()))
    require_admin(principal, f"os_compute_api:os-flavor-access:{action}")
    if not isinstance(data, dict):
        raise ValidationFailed(f"Invalid input: '{action}' must be an object", field=action)
    tenant = req_str(data, "tenant")
    flavor = await visible_flavor(state, principal, flavor_id)
    if flavor.is_public:
        raise Conflict("Can not add access to a public flavor.")
    if action == "addTenantAccess":
        await state.flavors.add_access(flavor, tenant)
    else:
        await state.flavors.remove_access(flavor, tenant)
    return await _access_body(state, flavor)
