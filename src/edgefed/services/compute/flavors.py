"""Flavors: CRUD (admin), list/detail with Nova's filters, extra specs and access lists.

The usual DevStack flavors are seeded at start (idempotently). A flavor delivered by a
sync source (``origin`` set) is read-only here: changes answer 409 naming the source.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.paging import parse_limit
from edgefed.api.policy import require_admin
from edgefed.api.responses import Json
from edgefed.core.errors import BadRequest, Conflict, NotFound, ValidationFailed
from edgefed.core.ids import new_uuid
from edgefed.services.compute.body import (
    invalid,
    opt_bool,
    opt_int,
    opt_str,
    read_json,
    req_str,
    section,
)
from edgefed.services.compute.links import links, next_link
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


async def visible_flavor(state: ComputeState, principal: Principal, flavor_id: str) -> FlavorRecord:
    flavor = await state.flavors.get(flavor_id)
    if flavor is not None and not flavor.is_public and not principal.is_admin:
        allowed = await state.flavors.access_list(flavor.id)
        if principal.project_id not in allowed:
            flavor = None
    if flavor is None:
        raise NotFound(f"Flavor {flavor_id} could not be found.")
    return flavor


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
    marker = params.get("marker")
    if marker:
        ids = [f.id for f in selected]
        if marker not in ids:
            raise BadRequest(f"marker [{marker}] not found")
        selected = selected[ids.index(marker) + 1 :]
    limit = parse_limit(params.get("limit"))
    page, more = selected[:limit], len(selected) > limit
    body: dict[str, Any] = {
        "flavors": [flavor_view(request, f, version, detail=detail) for f in page]
    }
    if more and page:
        body["flavors_links"] = [next_link(request, "flavors", page[-1].id, limit)]
    return Json(body)


@router.get("/v2.1/flavors")
async def list_flavors(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    return await _list(request, principal, state, detail=False)


@router.get("/v2.1/flavors/detail")
async def list_flavors_detail(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    return await _list(request, principal, state, detail=True)


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


# -- extra specs ----------------------------------------------------------------------


def _spec_values(data: Any) -> dict[str, str]:
    if not isinstance(data, dict):
        raise BadRequest("Malformed extra specs: an object is expected")
    result: dict[str, str] = {}
    for key, value in data.items():
        if not re.fullmatch(r"[\w\-: .]{1,255}", str(key)):
            raise invalid("extra_specs", f"key {key!r} must be 1-255 of letters, digits, '_-:. '")
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise invalid("extra_specs", f"value of {key!r} must be a string or a number")
        text = str(value)
        if len(text) > 255:
            raise invalid("extra_specs", f"value of {key!r} is longer than 255 characters")
        result[str(key)] = text
    return result


@router.get("/v2.1/flavors/{flavor_id}/os-extra_specs")
async def list_extra_specs(
    flavor_id: str,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    flavor = await visible_flavor(state, principal, flavor_id)
    return Json({"extra_specs": dict(flavor.extra_specs)})


@router.post("/v2.1/flavors/{flavor_id}/os-extra_specs")
async def create_extra_specs(
    flavor_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    require_admin(principal, "os_compute_api:os-flavor-extra-specs:create")
    body = await read_json(request)
    if "extra_specs" not in body:
        raise ValidationFailed(
            "Invalid input: 'extra_specs' is a required property", field="extra_specs"
        )
    specs = _spec_values(body["extra_specs"])
    flavor = await visible_flavor(state, principal, flavor_id)
    await state.flavors.update(flavor, extra_specs={**flavor.extra_specs, **specs})
    return Json({"extra_specs": specs})


@router.get("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}")
async def show_extra_spec(
    flavor_id: str,
    key: str,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    flavor = await visible_flavor(state, principal, flavor_id)
    if key not in flavor.extra_specs:
        raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
    return Json({key: flavor.extra_specs[key]})


@router.put("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}")
async def update_extra_spec(
    flavor_id: str,
    key: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    require_admin(principal, "os_compute_api:os-flavor-extra-specs:update")
    body = await read_json(request)
    if len(body) != 1 or key not in body:
        raise BadRequest("Request body and URI mismatch")
    specs = _spec_values(body)
    flavor = await visible_flavor(state, principal, flavor_id)
    await state.flavors.update(flavor, extra_specs={**flavor.extra_specs, **specs})
    return Json(specs)


@router.delete("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}")
async def delete_extra_spec(
    flavor_id: str,
    key: str,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Response:
    require_admin(principal, "os_compute_api:os-flavor-extra-specs:delete")
    flavor = await visible_flavor(state, principal, flavor_id)
    if key not in flavor.extra_specs:
        raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
    await state.flavors.update(
        flavor, extra_specs={k: v for k, v in flavor.extra_specs.items() if k != key}
    )
    return Response(status_code=200)


# -- access -----------------------------------------------------------------------------


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
