"""The metadata API of volumes and of snapshots (``/metadata``, ``/metadata/{key}``):
the same routes over two resources."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.bodies import read_object
from edgefed.api.resource import Call, Resource, routes
from edgefed.api.responses import Json
from edgefed.api.service import DeclaredRoute
from edgefed.core.errors import BadRequest, NotFound
from edgefed.services.volume.cinder import CINDER, metadata_items
from edgefed.services.volume.snapshots import SNAPSHOT
from edgefed.services.volume.volumes import VOLUME
from edgefed.store.volume import Snapshots, Volumes

router = APIRouter(route_class=DeclaredRoute)


async def _found(resource: Resource[Any, Any], request: Request, verb: str) -> tuple[Call, Any]:
    call = await routes.begin(resource, request, verb)
    record = await resource.find(call, call.path(resource.id_param))
    if verb != "show":
        resource.access.check_write(call, record, "update")
    return call, record


def _missing(resource: Resource[Any, Any], id: str, key: str) -> NotFound:
    return NotFound(f"{resource.title} {id} has no metadata with key {key}.")


async def _write(call: Call, record: Any, items: dict[str, str], *, replace: bool) -> None:
    repo: Volumes | Snapshots = call.resource.repository(call)
    await repo.set_metadata(record.id, items, replace=replace)


def add_routes(resource: Resource[Any, Any]) -> None:
    base = f"{resource.path}/{{{resource.id_param}}}/metadata"
    name = resource.key

    async def index(request: Request) -> Json:
        _, record = await _found(resource, request, "show")
        return Json({"metadata": dict(record.metadata)})

    async def create(request: Request) -> Json:
        call, record = await _found(resource, request, "update")
        items = metadata_items(await read_object(request, CINDER.body, key="metadata"))
        await _write(call, record, items, replace=False)
        return Json({"metadata": {**record.metadata, **items}})

    async def update_all(request: Request) -> Json:
        call, record = await _found(resource, request, "update")
        items = metadata_items(await read_object(request, CINDER.body, key="metadata"))
        await _write(call, record, items, replace=True)
        return Json({"metadata": items})

    async def show(request: Request, key: str) -> Json:
        _, record = await _found(resource, request, "show")
        if key not in record.metadata:
            raise _missing(resource, record.id, key)
        return Json({"meta": {key: record.metadata[key]}})

    async def update(request: Request, key: str) -> Json:
        call, record = await _found(resource, request, "update")
        meta = await read_object(request, CINDER.body, key="meta")
        if key not in meta:
            raise BadRequest("Request body and URI mismatch")
        if len(meta) > 1:
            raise BadRequest("Request body contains too many items")
        items = metadata_items(meta, "meta")
        await _write(call, record, items, replace=False)
        return Json({"meta": items})

    async def delete(request: Request, key: str) -> Response:
        call, record = await _found(resource, request, "update")
        if key not in record.metadata:
            raise _missing(resource, record.id, key)
        rest = {k: v for k, v in record.metadata.items() if k != key}
        await _write(call, record, rest, replace=True)
        return Response(status_code=200)

    router.add_api_route(base, index, methods=["GET"], name=f"list_{name}_metadata")
    router.add_api_route(base, create, methods=["POST"], name=f"create_{name}_metadata")
    router.add_api_route(base, update_all, methods=["PUT"], name=f"replace_{name}_metadata")
    item = f"{base}/{{key}}"
    router.add_api_route(item, show, methods=["GET"], name=f"show_{name}_metadata")
    router.add_api_route(item, update, methods=["PUT"], name=f"update_{name}_metadata")
    router.add_api_route(item, delete, methods=["DELETE"], name=f"delete_{name}_metadata")


add_routes(VOLUME)
add_routes(SNAPSHOT)
