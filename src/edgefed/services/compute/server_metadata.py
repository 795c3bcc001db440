"""Server metadata: ``/servers/{id}/metadata`` and its items.

Metadata counts against the project's ``metadata_items`` quota, per server, so every
write checks the merged result before storing it.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.policy import require_read
from edgefed.api.responses import Json
from edgefed.core.errors import BadRequest, NotFound, OverQuota, ValidationFailed
from edgefed.services.compute.body import read_json, string_map
from edgefed.services.compute.lookups import get_server
from edgefed.services.compute.microversion import MicroversionRoute
from edgefed.services.compute.quota_limits import project_limits
from edgefed.services.compute.state import ComputeState, compute_state
from edgefed.store.compute import ServerRecord

router = APIRouter(route_class=MicroversionRoute)


async def _store(state: ComputeState, server: ServerRecord, merged: dict[str, str]) -> None:
    """Store ``merged`` as the server's metadata if the quota allows that many items."""
    items = len(merged)
    limit = (await project_limits(state, server.project_id))["metadata_items"]
    if 0 <= limit < items:
        raise OverQuota(
            f"Quota exceeded for metadata_items: Requested {items}, but already used 0 of "
            f"{limit} metadata_items"
        )
    await state.servers.update(server.id, metadata=merged)


@router.get("/v2.1/servers/{server_id}/metadata")
async def list_metadata(
    server_id: str,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    server = await get_server(state, principal, server_id)
    require_read(principal, server.project_id, "os_compute_api:server-metadata:index")
    return Json({"metadata": dict(server.metadata)})


async def _write_metadata(
    request: Request, principal: Principal, state: ComputeState, server_id: str, *, replace: bool
) -> Json:
    body = await read_json(request)
    values = string_map(body, "metadata")
    if "metadata" not in body:
        raise ValidationFailed("Invalid input: 'metadata' is a required property", field="metadata")
    server = await get_server(state, principal, server_id, write=True)
    merged = values if replace else {**server.metadata, **values}
    await _store(state, server, merged)
    return Json({"metadata": merged})


@router.post("/v2.1/servers/{server_id}/metadata")
async def update_metadata(
    server_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    return await _write_metadata(request, principal, state, server_id, replace=False)


@router.put("/v2.1/servers/{server_id}/metadata")
async def replace_metadata(
    server_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    return await _write_metadata(request, principal, state, server_id, replace=True)


@router.get("/v2.1/servers/{server_id}/metadata/{key}")
async def show_metadata_item(
    server_id: str,
    key: str,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    server = await get_server(state, principal, server_id)
    if key not in server.metadata:
        raise NotFound("Metadata item was not found")
    return Json({"meta": {key: server.metadata[key]}})


@router.put("/v2.1/servers/{server_id}/metadata/{key}")
async def set_metadata_item(
    server_id: str,
    key: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    body = await read_json(request)
    meta = string_map(body, "meta")
    if len(meta) != 1:
        raise BadRequest("Request body contains too many items")
    if key not in meta:
        raise BadRequest("Request body and URI mismatch")
    server = await get_server(state, principal, server_id, write=True)
    await _store(state, server, {**server.metadata, **meta})
    return Json({"meta": meta})


@router.delete("/v2.1/servers/{server_id}/metadata/{key}", status_code=204)
async def delete_metadata_item(
    server_id: str,
    key: str,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Response:
    server = await get_server(state, principal, server_id, write=True)
    if key not in server.metadata:
        raise NotFound("Metadata item was not found")
    await state.servers.update(
        server.id, metadata={k: v for k, v in server.metadata.items() if k != key}
    )
    return Response(status_code=204)
