"""Servers: create, list/detail with filters, show, update, delete.

Create parses the body as Nova does (boot_request.py), checks everything a user can get
wrong *before* answering (boot_checks.py: image, flavor, networks, key, quota, zone),
records the server in BUILD and hands it to the lifecycle, which schedules and spawns it
in the background. Metadata routes are in server_metadata.py, actions in actions.py.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.policy import require_write
from edgefed.api.responses import Json
from edgefed.api.scope_honour import require_here
from edgefed.api.service import routes_of
from edgefed.core.errors import BadRequest, Conflict, NotFound
from edgefed.core.ids import new_uuid
from edgefed.services.compute import server_metadata
from edgefed.services.compute.body import opt_str, read_json, req_str, section
from edgefed.services.compute.boot_checks import CheckedBoot, check_boot
from edgefed.services.compute.boot_request import BootRequest, parse_boot_request
from edgefed.services.compute.boot_volumes import initial_mappings
from edgefed.services.compute.drain_gate import refuse_new_servers
from edgefed.services.compute.links import links
from edgefed.services.compute.listing import add_list_routes, page_of
from edgefed.services.compute.lookups import (
    flavor_columns,
    flavor_doc,
    get_server,
    relocated_to,
)
from edgefed.services.compute.microversion import MicroversionRoute, api_version
from edgefed.services.compute.name_filter import NameFilter
from edgefed.services.compute.server_views import (
    STATUS_TO_VM_STATE,
    brief_view,
    server_view,
    status_of,
)
from edgefed.services.compute.state import ComputeState, compute_state
from edgefed.store.compute import Relocations, ServerRecord
from edgefed.store.network import NetworkRecord, PortRecord

router = APIRouter(route_class=MicroversionRoute)

HOSTNAME_BAD = re.compile(r"[^a-z0-9-]+")


def hostname_for(name: str) -> str:
    cleaned = HOSTNAME_BAD.sub("-", name.lower()).strip("-")[:63]
    return cleaned or "server"


async def network_context(
    state: ComputeState,
) -> tuple[dict[str, list[PortRecord]], dict[str, NetworkRecord]]:
    by_device: dict[str, list[PortRecord]] = {}
    for port in await state.networks.list_ports():
        if port.device_id:
            by_device.setdefault(port.device_id, []).append(port)
    networks = {n.id: n for n in await state.networks.list_networks()}
    return by_device, networks


async def relocating_to(state: ComputeState, servers: list[ServerRecord]) -> dict[str, str]:
    """Where the moves under way take these servers: server id -> site."""
    if not any(s.task_state == "relocating" for s in servers):
        return {}
    moving = await Relocations(state.ctx.store).list(direction="out", unfinished=True)
    return {r.server_id: r.peer_site for r in moving}


async def render(
    request: Request, state: ComputeState, principal: Principal, server: ServerRecord
) -> dict[str, Any]:
    ports = await state.networks.list_ports(device_id=server.id)
    networks = {n.id: n for n in await state.networks.list_networks()}
    return server_view(
        request, server, api_version(request), principal, ports=ports, networks=networks,
        relocating_to=(await relocating_to(state, [server])).get(server.id),
    )  # fmt: skip


# -- create ------------------------------------------------------------------------------


@router.post("/v2.1/servers", status_code=202)
async def create_server(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    body = await read_json(request)
    data = section(body, "server")
    project_id = principal.project_id
    if project_id is None:
        raise BadRequest("Creating a server needs a project-scoped token.")
    require_write(principal, project_id, "os_compute_api:servers:create")
    await refuse_new_servers(state)
    boot = parse_boot_request(data, api_version(request))
    # The image follows the scope (image_source.py); networks and boot volumes, and the
    # images those volumes are made of, are this site's: a scope that sends them
    # elsewhere is refused, not ignored.
    if boot.networks != "none":
        require_here(
            state.ctx, request.scope, service="network", what="the networks of a server booted"
        )
    if boot.volumes:
        require_here(
            state.ctx, request.scope, service="volume", what="the volumes a server boots from"
        )
    if any(v.image_id not in (None, boot.image_ref) for v in boot.volumes):
        require_here(
            state.ctx,
            request.scope,
            service="image",
            what="the images a server's boot volumes are made of",
        )
    checked = await check_boot(state, request, principal, boot, project_id=project_id)
    reservation_id = f"r-{new_uuid()[:8]}"
    created: list[ServerRecord] = []
    for index in range(boot.max_count):
        values = _server_values(
            state, principal, boot, checked, project_id=project_id,
            reservation_id=reservation_id, index=index,
        )  # fmt: skip
        if boot.volumes and state.ctx.volumes is not None:
            volumes = await initial_mappings(state.ctx.volumes, principal, boot.volumes)
            values["volumes"] = [v.to_json() for v in volumes]
        server = await state.servers.create(values=values)
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
    if boot.return_reservation_id:
        return Json({"reservation_id": reservation_id}, status_code=202)
    reply: dict[str, Any] = {
        "id": first.id,
        "links": links(request, "servers", first.id),
        "OS-DCF:diskConfig": "MANUAL",
        "security_groups": [{"name": g} for g in first.security_groups],
        "adminPass": new_uuid().replace("-", "")[:12],
    }
    return Json({"server": reply}, status_code=202, headers={"Location": reply["links"][0]["href"]})


def _server_values(
    state: ComputeState,
    principal: Principal,
    boot: BootRequest,
    checked: CheckedBoot,
    *,
    project_id: str,
    reservation_id: str,
    index: int,
) -> dict[str, Any]:
    """The row of the ``index``-th server of a boot (``name-1``, ``name-2``... for several)."""
    flavor = checked.flavor
    name = boot.name if boot.max_count == 1 else f"{boot.name}-{index + 1}"
    return {
        "id": new_uuid(),
        "name": name,
        "project_id": project_id,
        "user_id": principal.user_id,
        "image_id": checked.image.id if checked.image is not None else None,
        **flavor_columns(flavor_doc(flavor)),
        "availability_zone": checked.zone or state.ctx.settings.availability_zone,
        "vm_state": "building",
        "task_state": "scheduling",
        "power_state": 0,
        "key_name": boot.key_name,
        "key_data": checked.key_data,
        "metadata": boot.metadata,
        "user_data": boot.user_data,
        "description": boot.description,
        "locked": False,
        "tags": list(boot.tags),
        "security_groups": list(boot.security_groups),
        "requested_networks": boot.networks,
        "config_drive": "True" if boot.config_drive else "",
        "reservation_id": reservation_id,
        "launch_index": index,
        "hostname": hostname_for(name),
    }


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
    page = page_of(request, servers)
    if detail:
        by_device, networks = await network_context(state)
        version = api_version(request)
        moving = await relocating_to(state, page.items)
        items = [
            server_view(
                request, s, version, principal, ports=by_device.get(s.id, []), networks=networks,
                relocating_to=moving.get(s.id),
            )
            for s in page.items
        ]  # fmt: skip
    else:
        items = [brief_view(request, s) for s in page.items]
    return page.answer(request, "servers", items)


add_list_routes(router, "/v2.1/servers", "list_servers", _list)


@router.get("/v2.1/servers/{server_id}")
async def show_server(
    server_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Response:
    try:
        server = await get_server(state, principal, server_id)
    except NotFound:
        # A server relocated from here: its show is at the site it went to (301, which
        # keystoneauth follows with the same token; that site decides what it shows).
        moved = await relocated_to(state, principal, server_id)
        base = state.ctx.fleet_sites().get(moved.peer_site) if moved is not None else None
        if base is None:
            raise
        location = f"{base}/compute/v2.1/servers/{server_id}"
        return Response(status_code=301, headers={"Location": location})
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


# The routes of server_metadata.py are this router's too (service.py
# builds the compute router from these modules' routes: api.service.routes_of).
router.routes.extend(routes_of(server_metadata.router))
