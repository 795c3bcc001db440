"""/v3/services and /v3/endpoints.

The lists include the generated catalog: one service per service type this site
serves, three endpoints per (fleet site, service).
Generated entries cannot be changed through the API (409): they follow the fleet
registry. Entries created through the API are stored and added to every token catalog.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.responses import Json
from edgefed.core.errors import Conflict, NotFound, ValidationFailed
from edgefed.core.ids import new_hex_id
from edgefed.services.identity.catalog import generated_endpoints, generated_services
from edgefed.services.identity.common import query_flag
from edgefed.services.identity.guard import authorize
from edgefed.services.identity.regions import find_region
from edgefed.services.identity.schemas import (
    EndpointCreateBody,
    EndpointUpdateBody,
    ServiceCreateBody,
    ServiceUpdateBody,
)
from edgefed.services.identity.state import IdentityState, identity_state
from edgefed.services.identity.views import collection, links
from edgefed.store.identity import endpoints, services

router = APIRouter()
GENERATED = "is generated from the fleet registry and cannot be changed through the API."


# ---- views -------------------------------------------------------------------------------


def service_view(state: IdentityState, row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row.get("extra", {}),
        "id": row["id"],
        "type": row["type"],
        "name": row.get("name", ""),
        "description": row.get("description", ""),
        "enabled": row.get("enabled", True),
        "links": links(state, f"/services/{row['id']}"),
    }


def endpoint_view(state: IdentityState, row: dict[str, Any]) -> dict[str, Any]:
    return {
        **row.get("extra", {}),
        "id": row["id"],
        "interface": row["interface"],
        "region": row["region_id"],
        "region_id": row["region_id"],
        "service_id": row["service_id"],
        "url": row["url"],
        "enabled": row.get("enabled", True),
        "links": links(state, f"/endpoints/{row['id']}"),
    }


def _generated_services(state: IdentityState) -> dict[str, dict[str, Any]]:
    return {
        s.id: {"id": s.id, "type": s.type, "name": s.name, "description": "", "enabled": True}
        for s in generated_services(state)
    }


def _generated_endpoints(state: IdentityState) -> dict[str, dict[str, Any]]:
    return {
        e.id: {
            "id": e.id,
            "interface": e.interface,
            "region_id": e.region_id,
            "service_id": e.service_id,
            "url": e.url,
            "enabled": True,
        }
        for e in generated_endpoints(state)
    }


# ---- services ----------------------------------------------------------------------------


@router.post("/v3/services", status_code=201)
async def create_service(
    body: ServiceCreateBody,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "create_service")
    s = body.service
    row = await state.repo.create(
        services,
        {
            "id": new_hex_id(),
            "type": s.type,
            "name": s.name or "",
            "description": s.description or "",
            "enabled": s.enabled,
            "extra": s.extras(),
        },
        what="service",
    )
    return Json({"service": service_view(state, row)}, status_code=201)


@router.get("/v3/services")
async def list_services(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    rows = [*_generated_services(state).values(), *await state.repo.list_rows(services)]
    q = request.query_params
    for key in ("type", "name"):
        if q.get(key) is not None:
            rows = [r for r in rows if r.get(key) == q[key]]
    return Json(
        collection(state, "services", (service_view(state, r) for r in rows), path="/services")
    )


async def _service(state: IdentityState, service_id: str) -> dict[str, Any]:
    generated = _generated_services(state).get(service_id)
    if generated is not None:
        return generated
    row = await state.repo.get(services, service_id)
    if row is None:
        raise NotFound(f"Could not find service: {service_id}.")
    return row


@router.get("/v3/services/{service_id}")
async def get_service(
    service_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    return Json({"service": service_view(state, await _service(state, service_id))})


@router.patch("/v3/services/{service_id}")
async def update_service(
    service_id: str,
    body: ServiceUpdateBody,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "update_service")
    if service_id in _generated_services(state):
        raise Conflict(f"Service {service_id} {GENERATED}")
    row = await _service(state, service_id)
    changes = {k: v for k, v in body.service.given().items() if v is not None}
    if body.service.extras():
        changes["extra"] = {**row["extra"], **body.service.extras()}
    updated = await state.repo.update(services, service_id, changes, what="service")
    assert updated is not None
    return Json({"service": service_view(state, updated)})


@router.delete("/v3/services/{service_id}", status_code=204)
async def delete_service(
    service_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Response:
    authorize(principal, "delete_service")
    if service_id in _generated_services(state):
        raise Conflict(f"Service {service_id} {GENERATED}")
    await _service(state, service_id)
    for ep in await state.repo.list_rows(endpoints, filters={"service_id": service_id}):
        await state.repo.delete(endpoints, ep["id"])
    await state.repo.delete(services, service_id)
    return Response(status_code=204)


# ---- endpoints ---------------------------------------------------------------------------


@router.post("/v3/endpoints", status_code=201)
async def create_endpoint(
    body: EndpointCreateBody,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "create_endpoint")
    e = body.endpoint
    if e.service_id in _generated_services(state):
        raise Conflict(f"Service {e.service_id} {GENERATED}")
    if await state.repo.get(services, e.service_id) is None:
        raise ValidationFailed(f"Could not find service: {e.service_id}.", field="service_id")
    region_id = e.region_id or e.region
    if region_id is not None:
        await find_region(state, region_id)
    row = await state.repo.create(
        endpoints,
        {
            "id": new_hex_id(),
            "service_id": e.service_id,
            "region_id": region_id,
            "interface": e.interface,
            "url": e.url,
            "enabled": e.enabled,
            "extra": e.extras(),
        },
        what="endpoint",
    )
    return Json({"endpoint": endpoint_view(state, row)}, status_code=201)


@router.get("/v3/endpoints")
async def list_endpoints(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    rows = [
        *_generated_endpoints(state).values(),
        *await state.repo.list_rows(endpoints, order_by="id"),
    ]
    q = request.query_params
    for key in ("service_id", "interface", "region_id"):
        if q.get(key) is not None:
            rows = [r for r in rows if r.get(key) == q[key]]
    enabled = query_flag(q.get("enabled"))
    if enabled is not None:
        rows = [r for r in rows if r.get("enabled", True) == enabled]
    return Json(
        collection(state, "endpoints", (endpoint_view(state, r) for r in rows), path="/endpoints")
    )


async def _endpoint(state: IdentityState, endpoint_id: str) -> dict[str, Any]:
    generated = _generated_endpoints(state).get(endpoint_id)
    if generated is not None:
        return generated
    row = await state.repo.get(endpoints, endpoint_id)
    if row is None:
        raise NotFound(f"Could not find endpoint: {endpoint_id}.")
    return row


@router.get("/v3/endpoints/{endpoint_id}")
async def get_endpoint(
    endpoint_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    return Json({"endpoint": endpoint_view(state, await _endpoint(state, endpoint_id))})


@router.patch("/v3/endpoints/{endpoint_id}")
async def update_endpoint(
    endpoint_id: str,
    body: EndpointUpdateBody,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "update_endpoint")
    if endpoint_id in _generated_endpoints(state):
        raise Conflict(f"Endpoint {endpoint_id} {GENERATED}")
    row = await _endpoint(state, endpoint_id)
    changes = {k: v for k, v in body.endpoint.given().items() if v is not None}
    if "region" in changes:
        changes["region_id"] = changes.pop("region")
    if "region_id" in changes:
        await find_region(state, changes["region_id"])
    if "service_id" in changes and await state.repo.get(services, changes["service_id"]) is None:
        raise ValidationFailed(
            f"Could not find service: {changes['service_id']}.", field="service_id"
        )
    if body.endpoint.extras():
        changes["extra"] = {**row["extra"], **body.endpoint.extras()}
    updated = await state.repo.update(endpoints, endpoint_id, changes, what="endpoint")
    assert updated is not None
    return Json({"endpoint": endpoint_view(state, updated)})


@router.delete("/v3/endpoints/{endpoint_id}", status_code=204)
async def delete_endpoint(
    endpoint_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Response:
    authorize(principal, "delete_endpoint")
    if endpoint_id in _generated_endpoints(state):
        raise Conflict(f"Endpoint {endpoint_id} {GENERATED}")
    await _endpoint(state, endpoint_id)
    await state.repo.delete(endpoints, endpoint_id)
    return Response(status_code=204)
