"""What users see of relocations: ``GET /v2.1/os-edge/relocations`` (the caller's
project's moves, out of and into this site; an admin's ``all_tenants=1`` every one) and
``GET /v2.1/servers/{id}/os-edge-relocations`` (one server's, also once it has left:
that is where it says where it went)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.requests import Request

from edgefed.api.auth import Principal, current_principal
from edgefed.api.responses import Json
from edgefed.core.errors import NotFound
from edgefed.services.compute.microversion import MicroversionRoute
from edgefed.services.compute.relocation_in import PREFIX
from edgefed.services.compute.relocation_out import view
from edgefed.services.compute.state import ComputeState, compute_state
from edgefed.store.compute import Relocations

router = APIRouter(route_class=MicroversionRoute)


@router.get(PREFIX)
async def list_relocations(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    every = principal.is_admin and request.query_params.get("all_tenants") in ("1", "true", "True")
    project = None if every else principal.project_id
    if project is None and not every:
        return Json({"relocations": []})
    found = await Relocations(state.ctx.store).list(project_id=project)
    return Json({"relocations": [view(r) for r in found]})


@router.get("/v2.1/servers/{server_id}/os-edge-relocations")
async def server_relocations(
    server_id: str,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    found = [
        r
        for r in await Relocations(state.ctx.store).list(server_id=server_id)
        if principal.is_admin or r.project_id == principal.project_id
    ]
    if not found and await state.servers.get(server_id) is None:
        raise NotFound(f"Instance {server_id} could not be found.")
    return Json({"relocations": [view(r) for r in found]})
