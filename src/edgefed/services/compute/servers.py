"""Servers: create (validated as Nova does), list/detail with filters, show, update,
delete, and server metadata.

Create checks everything a user can get wrong *before* answering (image, flavor,
networks, key, quota, zone), records the server in BUILD and hands it to the
lifecycle, which schedules and spawns it in the background.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.context import site_context
from edgefed.api.paging import parse_limit
from edgefed.api.policy import require_read, require_write
from edgefed.api.responses import Json
from edgefed.core.errors import BadRequest, Conflict, NotFound, OverQuota, ValidationFailed
from edgefed.core.ids import is_uuid, new_uuid
from edgefed.services.compute.body import (
    invalid,
    opt_int,
    opt_str,
    read_json,
    req_str,
    section,
    string_map,
)
from edgefed.services.compute.flavors import visible_flavor
from edgefed.services.compute.image_source import image_for_boot
from edgefed.services.compute.links import links, next_link
from edgefed.services.compute.microversion import APIVersion, MicroversionRoute, api_version
from edgefed.services.compute.name_filter import NameFilter
from edgefed.services.compute.quotas import check_server_quota, project_limits
from edgefed.services.compute.server_views import (
    STATUS_TO_VM_STATE,
    brief_view,
    server_view,
    status_of,
)
from edgefed.services.compute.state import ComputeState, compute_state
from edgefed.store.compute import ServerRecord
from edgefed.store.network import NetworkRecord, PortRecord

router = APIRouter(route_class=MicroversionRoute)

MAX_USER_DATA = 65535
HOSTNAME_BAD = re.compile(r"[^a-z0-9-]+")


def hostname_for(name: str) -> str:
    cleaned = HOSTNAME_BAD.sub("-", name.lower()).strip("-")[:63]
    return cleaned or "server"


async def get_server(
    state: ComputeState, principal: Principal, server_id: str, *, write: bool = False
) -> ServerRecord:
    server = await state.servers.get(server_id)
    if server is None:
        raise NotFound(f"Instance {server_id} could not be found.")
    if write:
        require_write(principal, server.project_id, "os_compute_api:servers:update")
    elif not principal.is_admin and principal.project_id != server.project_id:
        raise NotFound(f"Instance {server_id} could not be found.")
    return server


async def network_context(
    state: ComputeState,
) -> tuple[dict[str, list[PortRecord]], dict[str, NetworkRecord]]:
    by_device: dict[str, list[PortRecord]] = {}
    for port in await state.networks.list_ports():
        if port.device_id:
            by_device.setdefault(port.device_id, []).append(port)
    networks = {n.id: n for n in await state.networks.list_networks()}
    return by_device, networks


async def render(
    request: Request, state: ComputeState, principal: Principal, server: ServerRecord
) -> dict[str, Any]:
    ports = await state.networks.list_ports(device_id=server.id)
    networks = {n.id: n for n in await state.networks.list_networks()}
    return server_view(
        request, server, api_version(request), principal, ports=ports, networks=networks
    )


# -- create ------------------------------------------------------------------------------


def _parse_networks(data: dict[str, Any], version: APIVersion) -> Any:
    if "networks" not in data:
        if version.at_least("2.37"):
            raise ValidationFailed(
                "Invalid input: 'networks' is a required property", field="networks"
            )
        return "auto"
    raw = data["networks"]
    if isinstance(raw, str):
        if raw in ("auto", "none") and version.at_least("2.37"):
            return raw
        raise invalid("networks", f"{raw!r} is not one of ['auto', 'none'] and not an array")
    if not isinstance(raw, list):
        raise invalid("networks", f"{raw!r} is not of type 'array'")
    parsed: list[dict[str, str]] = []
    for item in raw:
        if not isinstance(item, dict):
            raise invalid("networks", f"{item!r} is not of type 'object'")
        entry: dict[str, str] = {}
        if item.get("port"):
            if not is_uuid(str(item["port"])):
                raise BadRequest(f"Bad networks format: port uuid {item['port']} is invalid")
            entry["port"] = str(item["port"])
        elif item.get("uuid"):
            if not is_uuid(str(item["uuid"])):
                raise BadRequest(
                    f"Bad networks format: network uuid is not in proper format ({item['uuid']})"
                )
            entry["uuid"] = str(item["uuid"])
        else:
            raise BadRequest("Bad networks format: each network needs a 'uuid' or a 'port'")
        if item.get("fixed_ip"):
            entry["fixed_ip"] = str(item["fixed_ip"])
        parsed.append(entry)
    return parsed


def _decode_user_data(data: dict[str, Any]) -> str | None:
    raw = data.get("user_data")
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise invalid("user_data", f"{raw!r} is not of type 'string'")
    if len(raw) > MAX_USER_DATA:
        raise BadRequest(
            f"User data too large. User data must be no larger than {MAX_USER_DATA} bytes "
            f"once base64 encoded. Your data is {len(raw)} bytes"
        )
    try:
        base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid("user_data", f"{raw[:40]!r}. {raw[:40]!r} is not a 'base64'") from exc
    return raw


@router.post("/v2.1/servers", status_code=202)
async def create_server(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    version = api_version(request)
    body = await read_json(request)
    data = section(body, "server")
    project_id = principal.project_id
    if project_id is None:
        raise BadRequest("Creating a server needs a project-scoped token.")
    require_write(principal, project_id, "os_compute_api:servers:create")
    name = req_str(data, "name")
    image_ref = data.get("imageRef") or ""
    bdms = data.get("block_device_mapping_v2") or []
    if not isinstance(bdms, list):
        raise invalid("block_device_mapping_v2", f"{bdms!r} is not of type 'array'")
    for bdm in bdms:
        if not isinstance(bdm, dict):
            raise invalid("block_device_mapping_v2", f"{bdm!r} is not of type 'object'")
        if bdm.get("source_type") == "volume" or bdm.get("destination_type") == "volume":
            raise BadRequest("Block device mappings of volumes are not supported on this site.")
        if not image_ref and bdm.get("source_type") == "image" and bdm.get("uuid"):
            image_ref = str(bdm["uuid"])
    if not isinstance(image_ref, str) or (image_ref and not is_uuid(image_ref)):
        raise BadRequest("Invalid imageRef provided.")
    if not image_ref:
        raise BadRequest("Invalid imageRef provided.")
    flavor_ref = data.get("flavorRef")
    if not isinstance(flavor_ref, str | int) or isinstance(flavor_ref, bool) or flavor_ref == "":
        raise ValidationFailed(
            "Invalid input: 'flavorRef' is a required property", field="flavorRef"
        )
    flavor_id = str(flavor_ref).rstrip("/").rsplit("/", 1)[-1]
    networks = _parse_networks(data, version)
    metadata = string_map(data, "metadata")
    user_data = _decode_user_data(data)
    description = opt_str(data, "description", max_len=255) if version.at_least("2.19") else None
    min_count = opt_int(data, "min_count", minimum=1) or 1
    max_count = opt_int(data, "max_count", minimum=1) or min_count
    if min_count > max_count:
        raise BadRequest("min_count must be <= max_count")
    zone = opt_str(data, "availability_zone")
    tags = data.get("tags", []) if version.at_least("2.52") else []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise invalid("tags", f"{tags!r} must be an array of strings")
    groups_raw = data.get("security_groups") or [{"name": "default"}]
    if not isinstance(groups_raw, list):
        raise invalid("security_groups", f"{groups_raw!r} is not of type 'array'")
    groups = [str(g.get("name")) for g in groups_raw if isinstance(g, dict) and g.get("name")]

    # The local image, or the one the request's scope says to fetch (and cache) from.
    # None as well for an image the caller may not see: Nova answers as if it did not exist.
    image = await image_for_boot(site_context(request), state.images, request, principal, image_ref)
    if image is None:
        raise BadRequest(f"Image {image_ref} could not be found.")
    if image.status != "active":
        raise BadRequest(f"Image {image_ref} is not active.")
    try:
        flavor = await visible_flavor(state, principal, flavor_id)
    except NotFound as exc:
        raise BadRequest(f"Flavor {flavor_id} could not be found.") from exc
    if image.min_ram and flavor.ram < image.min_ram:
        raise BadRequest("Flavor's memory is too small for requested image.")
    if image.min_disk and flavor.disk and flavor.disk < image.min_disk:
        raise BadRequest("Flavor's disk is too small for requested image.")
    key_name = opt_str(data, "key_name")
    key_data = None
    if key_name is not None:
        keypair = await state.keypairs.get(user_id=principal.user_id, name=key_name)
        if keypair is None:
            raise BadRequest("Invalid key_name provided.")
        key_data = keypair.public_key
    if isinstance(networks, list):
        for item in networks:
            if "uuid" in item:
                net = await state.networks.get_network(item["uuid"])
                if net is None or (
                    net.project_id != project_id and not net.shared and not principal.is_admin
                ):
                    raise BadRequest(f"Network {item['uuid']} could not be found.")
            else:
                port = await state.networks.get_port(item["port"])
                if port is None or (port.project_id != project_id and not principal.is_admin):
                    raise BadRequest(f"Port id {item['port']} could not be found.")
                if port.project_id != project_id:
                    # An admin sees every port, but a server uses its own project's (Nova).
                    raise BadRequest(
                        f"Port {item['port']} not usable for the new server: it belongs to "
                        f"project {port.project_id}, the server to project {project_id}."
                    )
                if port.device_id:
                    raise Conflict(f"Port {item['port']} is still in use.")
    if zone:
        zone_name = zone.split(":", 1)[0]
        if zone_name not in state.scheduler.zones():
            raise BadRequest("The requested availability zone is not available")
        zone = zone_name
    await check_server_quota(
        state,
        project_id=project_id,
        count=max_count,
        vcpus=flavor.vcpus,
        ram=flavor.ram,
        metadata_items=len(metadata),
    )
    flavor_copy = {
        "id": flavor.id,
        "name": flavor.name,
        "vcpus": flavor.vcpus,
        "ram": flavor.ram,
        "disk": flavor.disk,
        "ephemeral": flavor.ephemeral,
        "swap": flavor.swap,
        "extra_specs": dict(flavor.extra_specs),
    }
    reservation_id = f"r-{new_uuid()[:8]}"
    created: list[ServerRecord] = []
    for index in range(max_count):
        server_name = name if max_count == 1 else f"{name}-{index + 1}"
        server = await state.servers.create(
            values={
                "id": new_uuid(),
                "name": server_name,
                "project_id": project_id,
                "user_id": principal.user_id,
                "image_id": image.id,
                "flavor_id": flavor.id,
                "flavor": flavor_copy,
                "vcpus": flavor.vcpus,
                "ram": flavor.ram,
                "disk": flavor.disk + flavor.ephemeral,
                "availability_zone": zone or state.ctx.settings.availability_zone,
                "vm_state": "building",
                "task_state": "scheduling",
                "power_state": 0,
                "key_name": key_name,
                "key_data": key_data,
                "metadata": metadata,
                "user_data": user_data,
                "description": description,
                "locked": False,
                "tags": list(dict.fromkeys(tags)),
                "security_groups": groups or ["default"],
                "requested_networks": networks,
                "config_drive": "True"
                if data.get("config_drive") in (True, "true", "True")
                else "",
                "reservation_id": reservation_id,
                "launch_index": index,
                "hostname": hostname_for(server_name),
            }
        )
        await state.servers.record_action(
            server_id=server.id,
            action="create",
            request_id=_request_id(request),
            user_id=principal.user_id,
            project_id=project_id,
        )
        created.append(server)
    for server in created:
        state.lifecycle.start_build(server.id)
    first = created[0]
    if data.get("return_reservation_id") is True:
        return Json({"reservation_id": reservation_id}, status_code=202)
    reply: dict[str, Any] = {
        "id": first.id,
        "links": links(request, "servers", first.id),
        "OS-DCF:diskConfig": "MANUAL",
        "security_groups": [{"name": g} for g in first.security_groups],
        "adminPass": new_uuid().replace("-", "")[:12],
    }
    return Json({"server": reply}, status_code=202, headers={"Location": reply["links"][0]["href"]})


def _request_id(request: Request) -> str:
    return request.headers.get("x-openstack-request-id") or f"req-{new_uuid()}"


# -- list ------------------------------------------------------------------------------


def _parse_time(raw: str, name: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadRequest(f"Invalid filter field: {name}. '{raw}' is not a 'date-time'") from exc
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


async def _list(
    request: Request, principal: Principal, state: ComputeState, *, detail: bool
) -> Json:
    params = request.query_params
    all_tenants = (
        principal.is_admin
        and "all_tenants" in params
        and params["all_tenants"].lower() not in ("0", "false", "off", "no")
    )
    project: str | None = None if all_tenants else (principal.project_id or "")
    if principal.is_admin and (params.get("project_id") or params.get("tenant_id")):
        project = params.get("project_id") or params.get("tenant_id")
    since = None
    if "changes-since" in params:
        since = _parse_time(params["changes-since"], "changes-since")
    before = None
    if "changes-before" in params:
        before = _parse_time(params["changes-before"], "changes-before")
    want_deleted = since is not None or (
        principal.is_admin and params.get("deleted", "").lower() in ("true", "1")
    )
    servers = await state.servers.list_all(project_id=project, include_deleted=want_deleted)
    if "name" in params:
        # A regular expression, as in Nova, but matched in linear time (name_filter.py).
        name_filter = NameFilter(params["name"])
        servers = [s for s in servers if name_filter.search(s.name)]
    if "status" in params:
        wanted = params["status"].upper()
        if wanted not in STATUS_TO_VM_STATE:
            if principal.is_admin:
                raise BadRequest(f"Invalid server status {params['status']!r}")
            servers = []
        servers = [s for s in servers if status_of(s) == wanted]
    for key, attr in (
        ("image", "image_id"),
        ("flavor", "flavor_id"),
        ("availability_zone", "availability_zone"),
        ("key_name", "key_name"),
    ):
        if key in params:
            value = params[key].rstrip("/").rsplit("/", 1)[-1]
            servers = [s for s in servers if getattr(s, attr) == value]
    if "host" in params and principal.is_admin:
        servers = [s for s in servers if s.host == params["host"]]
    if since is not None:
        servers = [s for s in servers if s.updated_at >= since]
    if before is not None:
        servers = [s for s in servers if s.updated_at <= before]
    marker = params.get("marker")
    if marker:
        ids = [s.id for s in servers]
        if marker not in ids:
            raise BadRequest(f"marker [{marker}] not found")
        servers = servers[ids.index(marker) + 1 :]
    limit = parse_limit(params.get("limit"))
    page, more = servers[:limit], len(servers) > limit
    if detail:
        by_device, networks = await network_context(state)
        version = api_version(request)
        items = [
            server_view(
                request, s, version, principal, ports=by_device.get(s.id, []), networks=networks
            )
            for s in page
        ]
    else:
        items = [brief_view(request, s) for s in page]
    body: dict[str, Any] = {"servers": items}
    if more and page:
        body["servers_links"] = [next_link(request, "servers", page[-1].id, limit)]
    return Json(body)


@router.get("/v2.1/servers")
async def list_servers(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    return await _list(request, principal, state, detail=False)


@router.get("/v2.1/servers/detail")
async def list_servers_detail(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    return await _list(request, principal, state, detail=True)


@router.get("/v2.1/servers/{server_id}")
async def show_server(
    server_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    server = await get_server(state, principal, server_id)
    return Json({"server": await render(request, state, principal, server)})


@router.put("/v2.1/servers/{server_id}")
async def update_server(
    server_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    version = api_version(request)
    data = section(await read_json(request), "server")
    allowed = {"name", "accessIPv4", "accessIPv6", "OS-DCF:diskConfig"}
    if version.at_least("2.19"):
        allowed.add("description")
    if version.at_least("2.90"):
        allowed.add("hostname")
    unexpected = sorted(set(data) - allowed)
    if unexpected:
        raise BadRequest(
            f"Additional properties are not allowed ('{unexpected[0]}' was unexpected)"
        )
    server = await get_server(state, principal, server_id, write=True)
    changes: dict[str, Any] = {}
    if "name" in data:
        changes["name"] = req_str(data, "name")
    if "description" in data:
        changes["description"] = opt_str(data, "description", max_len=255)
    if "hostname" in data:
        changes["hostname"] = hostname_for(req_str(data, "hostname", max_len=63))
    if changes:
        server = await state.servers.update(server.id, **changes)
    return Json({"server": await render(request, state, principal, server)})


@router.delete("/v2.1/servers/{server_id}", status_code=204)
async def delete_server(
    server_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Response:
    server = await get_server(state, principal, server_id, write=True)
    if server.locked and not principal.is_admin:
        raise Conflict(f"Instance {server.id} is locked")
    await state.servers.update(server.id, task_state="deleting")
    await state.servers.record_action(
        server_id=server.id,
        action="delete",
        request_id=_request_id(request),
        user_id=principal.user_id,
        project_id=server.project_id,
    )
    state.lifecycle.start_delete(server.id)
    return Response(status_code=204)


# -- metadata ------------------------------------------------------------------------------


async def _check_meta_quota(state: ComputeState, server: ServerRecord, items: int) -> None:
    limit = (await project_limits(state, server.project_id))["metadata_items"]
    if 0 <= limit < items:
        raise OverQuota(
            f"Quota exceeded for metadata_items: Requested {items}, but already used 0 of "
            f"{limit} metadata_items"
        )


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
    await _check_meta_quota(state, server, len(merged))
    await state.servers.update(server.id, metadata=merged)
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
    merged = {**server.metadata, **meta}
    await _check_meta_quota(state, server, len(merged))
    await state.servers.update(server.id, metadata=merged)
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
