"""Flavors: CRUD (admin) and list/detail with Nova's filters and sorting.

The usual DevStack flavors are seeded at start (idempotently). A flavor delivered by a
sync source (``origin`` set) is read-only here: changes answer 409 naming the source.
Extra specs and access lists are in flavor_extra_specs.py and flavor_access.py.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.policy import require_admin
from edgefed.api.responses import Json
from edgefed.api.service import routes_of
from edgefed.core.errors import BadRequest, Conflict, NotFound, ValidationFailed
from edgefed.core.ids import new_uuid
from edgefed.services.compute import flavor_access, flavor_extra_specs
from edgefed.services.compute.body import (
    invalid,
    opt_bool,
    opt_int,
    opt_str,
    read_json,
    req_str,
    section,
)
from edgefed.services.compute.links import links
from edgefed.services.compute.listing import add_list_routes, page_of
from edgefed.services.compute.lookups import visible_flavor
from edgefed.services.compute.microversion import APIVersion, MicroversionRoute, api_version
from edgefed.services.compute.state import ComputeState, compute_state
from edgefed.store.compute import FlavorRecord, FlavorRepository

router = APIRouter(route_class=MicroversionRoute)

DEFAULT_FLAVORS = (
    ("1", "m1.tiny", 1, 512, 1),
    ("2", "m1.small", 1, 2048, 20),
    ("3", "m1.medium", 2, 4096, 40),
    ("4", "m1.large", 4, 8192, 80),
    ("5", "m1.xlarge", 8, 16384, 160),
)
FLAVOR_ID_RE = re.compile(r"^[\w.\- ]{1,255}$")
SORT_KEYS = {
    "flavorid": "id",
    "id": "id",
    "name": "name",
    "memory_mb": "ram",
    "ram": "ram",
    "vcpus": "vcpus",
    "root_gb": "disk",
    "disk": "disk",
    "created_at": "created_at",
}


async def seed_default_flavors(repo: FlavorRepository) -> None:
    for flavor_id, name, vcpus, ram, disk in DEFAULT_FLAVORS:
        await repo.ensure(
            values={
                "id": flavor_id,
                "name": name,
                "vcpus": vcpus,
                "ram": ram,
                "disk": disk,
                "ephemeral": 0,
                "swap": 0,
                "rxtx_factor": 1.0,
                "is_public": True,
            }
        )


def flavor_view(
    request: Request, flavor: FlavorRecord, version: APIVersion, *, detail: bool = True
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": flavor.id,
        "name": flavor.name,
        "links": links(request, "flavors", flavor.id),
    }
    if version.at_least("2.55"):
        view["description"] = flavor.description
    if not detail:
        return view
    view.update(
        {
            "ram": flavor.ram,
            "disk": flavor.disk,
            "vcpus": flavor.vcpus,
            "OS-FLV-EXT-DATA:ephemeral": flavor.ephemeral,
            "OS-FLV-DISABLED:disabled": False,
            "swap": flavor.swap if (flavor.swap or version.at_least("2.75")) else "",
            "rxtx_factor": flavor.rxtx_factor,
            "os-flavor-access:is_public": flavor.is_public,
        }
    )
    if version.at_least("2.61"):
        view["extra_specs"] = dict(flavor.extra_specs)
    return view


def _parse_is_public(raw: str | None, admin: bool) -> bool | None:
    if raw is None:
        return True
    value = raw.strip().lower()
    if value == "none":
        return None if admin else True
    if value in ("true", "t", "1", "yes", "y", "on"):
        return True
    if value in ("false", "f", "0", "no", "n", "off"):
        return False
    raise BadRequest(f"Invalid is_public filter [{raw}]")


async def _list(
    request: Request, principal: Principal, state: ComputeState, *, detail: bool
) -> Json:
    version = api_version(request)
    params = request.query_params
    is_public = _parse_is_public(params.get("is_public"), principal.is_admin)
    flavors = await state.flavors.list_all()
    shared: set[str] = set()
    if principal.project_id:
        shared = await state.flavors.projects_with_access(principal.project_id)
    selected = []
    for f in flavors:
        if principal.is_admin:
            if is_public is not None and f.is_public != is_public:
                continue
        elif not (f.is_public or f.id in shared) or (is_public is False and f.is_public):
            continue
        selected.append(f)
    for name, attr in (("minRam", "ram"), ("minDisk", "disk")):
        raw = params.get(name)
        if raw is not None:
            try:
                minimum = int(raw)
            except ValueError as exc:
                raise BadRequest(f"Invalid {name} filter [{raw}]") from exc
            selected = [f for f in selected if getattr(f, attr) >= minimum]
    sort_key = params.get("sort_key", "flavorid")
    if sort_key not in SORT_KEYS:
        raise BadRequest(f"Invalid sort_key {sort_key!r}: use one of {sorted(SORT_KEYS)}")
    sort_dir = params.get("sort_dir", "asc")
    if sort_dir not in ("asc", "desc"):
        raise BadRequest(f"Invalid sort_dir {sort_dir!r}: use asc or desc")
    attr = SORT_KEYS[sort_key]
    selected.sort(key=lambda f: (getattr(f, attr), f.id), reverse=sort_dir == "desc")
    page = page_of(request, selected)
    views = [flavor_view(request, f, version, detail=detail) for f in page.items]
    return page.answer(request, "flavors", views)


add_list_routes(router, "/v2.1/flavors", "list_flavors", _list)


@router.get("/v2.1/flavors/{flavor_id}")
async def show_flavor(
    flavor_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    flavor = await visible_flavor(state, principal, flavor_id)
    return Json({"flavor": flavor_view(request, flavor, api_version(request))})


@router.post("/v2.1/flavors")
async def create_flavor(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    require_admin(principal, "os_compute_api:os-flavor-manage:create")
    version = api_version(request)
    data = section(await read_json(request), "flavor")
    name = req_str(data, "name")
    if name != name.strip():
        raise invalid("name", f"{name!r}. It must not start or end with whitespace")
    flavor_id = data.get("id")
    if flavor_id is None or flavor_id == "auto":
        flavor_id = new_uuid()
    elif not isinstance(flavor_id, str | int) or not FLAVOR_ID_RE.match(str(flavor_id)):
        raise invalid("id", f"{flavor_id!r} does not match '^[\\w\\.\\- ]*$'")
    ram = opt_int(data, "ram", minimum=1)
    vcpus = opt_int(data, "vcpus", minimum=1)
    disk = opt_int(data, "disk", minimum=0)
    for key, value in (("ram", ram), ("vcpus", vcpus), ("disk", disk)):
        if value is None:
            raise ValidationFailed(f"Invalid input: '{key}' is a required property", field=key)
    description = None
    if "description" in data:
        if not version.at_least("2.55"):
            raise BadRequest("Additional properties are not allowed ('description' was unexpected)")
        description = opt_str(data, "description", max_len=65535)
    rxtx = data.get("rxtx_factor", 1.0)
    if isinstance(rxtx, bool) or not isinstance(rxtx, int | float) or rxtx <= 0:
        raise invalid("rxtx_factor", f"{rxtx!r} must be a number greater than 0")
    is_public = opt_bool(data, "os-flavor-access:is_public")
    names = {f.name for f in await state.flavors.list_all()}
    if name in names:
        raise Conflict(f"Flavor with name {name} already exists.")
    if await state.flavors.get(str(flavor_id)) is not None:
        raise Conflict(f"Flavor with ID {flavor_id} already exists.")
    flavor = await state.flavors.create(
        values={
            "id": str(flavor_id),
            "name": name,
            "ram": ram,
            "vcpus": vcpus,
            "disk": disk,
            "ephemeral": opt_int(data, "OS-FLV-EXT-DATA:ephemeral") or 0,
            "swap": opt_int(data, "swap") or 0,
            "rxtx_factor": float(rxtx),
            "is_public": True if is_public is None else is_public,
            "description": description,
        }
    )
    return Json({"flavor": flavor_view(request, flavor, version)})


@router.put("/v2.1/flavors/{flavor_id}")
async def update_flavor(
    flavor_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    version = api_version(request)
    if not version.at_least("2.55"):
        raise NotFound(f"The resource could not be found: PUT flavors at version {version}")
    require_admin(principal, "os_compute_api:os-flavor-manage:update")
    data = section(await read_json(request), "flavor")
    if "description" not in data or set(data) != {"description"}:
        raise ValidationFailed(
            "Invalid input: only 'description' can be updated", field="description"
        )
    flavor = await visible_flavor(state, principal, flavor_id)
    flavor = await state.flavors.update(
        flavor, description=opt_str(data, "description", max_len=65535)
    )
    return Json({"flavor": flavor_view(request, flavor, version)})


@router.delete("/v2.1/flavors/{flavor_id}", status_code=202)
async def delete_flavor(
    flavor_id: str,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Response:
    require_admin(principal, "os_compute_api:os-flavor-manage:delete")
    flavor = await visible_flavor(state, principal, flavor_id)
    await state.flavors.delete(flavor)
    return Response(status_code=202)


# The routes of flavor_extra_specs.py, flavor_access.py are this router's too (service.py
# builds the compute router from these modules' routes: api.service.routes_of).
router.routes.extend(routes_of(flavor_extra_specs.router, flavor_access.router))
