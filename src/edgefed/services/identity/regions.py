"""/v3/regions: one generated region per fleet site (ID = the site name), plus created ones.

Generated regions follow the fleet registry and cannot be changed through the API (409).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.responses import Json
from edgefed.core.errors import Conflict, NotFound
from edgefed.core.ids import new_hex_id
from edgefed.services.identity.guard import authorize
from edgefed.services.identity.schemas import RegionCreateBody, RegionUpdateBody
from edgefed.services.identity.state import IdentityState, identity_state
from edgefed.services.identity.views import collection, links
from edgefed.store.identity import regions

router = APIRouter()
GENERATED = "is generated from the fleet registry and cannot be changed through the API."


def region_view(state: IdentityState, row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row.get("extra", {}),
        "id": row["id"],
        "description": row.get("description", ""),
        "parent_region_id": row.get("parent_region_id"),
        "links": links(state, f"/regions/{row['id']}"),
    }


def _generated_regions(state: IdentityState) -> dict[str, dict[str, Any]]:
    return {
        name: {"id": name, "description": f"edgefed site {name}", "parent_region_id": None}
        for name in sorted(state.ctx.fleet_sites())
    }


@router.post("/v3/regions", status_code=201)
async def create_region(
    body: RegionCreateBody,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "create_region")
    r = body.region
    region_id = r.id or new_hex_id()
    if region_id in _generated_regions(state):
        raise Conflict(f"Region {region_id} {GENERATED}")
    row = await state.repo.create(
        regions,
        {
            "id": region_id,
            "description": r.description or "",
            "parent_region_id": r.parent_region_id,
            "extra": r.extras(),
        },
        what="region",
    )
    return Json({"region": region_view(state, row)}, status_code=201)


@router.get("/v3/regions")
async def list_regions(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    rows = [*_generated_regions(state).values(), *await state.repo.list_rows(regions)]
    parent = request.query_params.get("parent_region_id")
    if parent is not None:
        rows = [r for r in rows if r.get("parent_region_id") == parent]
    return Json(
        collection(state, "regions", (region_view(state, r) for r in rows), path="/regions")
    )


async def find_region(state: IdentityState, region_id: str) -> dict[str, Any]:
    generated = _generated_regions(state).get(region_id)
    if generated is not None:
        return generated
    row = await state.repo.get(regions, region_id)
    if row is None:
        raise NotFound(f"Could not find region: {region_id}.")
    return row


@router.get("/v3/regions/{region_id}")
async def get_region(
    region_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    return Json({"region": region_view(state, await find_region(state, region_id))})


@router.patch("/v3/regions/{region_id}")
async def update_region(
    region_id: str,
    body: RegionUpdateBody,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "update_region")
    if region_id in _generated_regions(state):
        raise Conflict(f"Region {region_id} {GENERATED}")
    row = await find_region(state, region_id)
    changes = body.region.given()
    if "description" in changes and changes["description"] is None:
        changes["description"] = ""
    if body.region.extras():
        changes["extra"] = {**row["extra"], **body.region.extras()}
    updated = await state.repo.update(regions, region_id, changes, what="region")
    assert updated is not None
    return Json({"region": region_view(state, updated)})


@router.delete("/v3/regions/{region_id}", status_code=204)
async def delete_region(
    region_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Response:
    authorize(principal, "delete_region")
    if region_id in _generated_regions(state):
        raise Conflict(f"Region {region_id} {GENERATED}")
    await find_region(state, region_id)
    await state.repo.delete(regions, region_id)
    return Response(status_code=204)
