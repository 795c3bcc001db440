"""A server's volumes: ``/servers/{id}/os-volume_attachments`` (``openstack server add
volume`` / ``remove volume``).

An attach records the volume on the server (``attaching``), asks the volume service
for a connection (through the ``api.volumes`` port: an attachment, the volume
``attaching``), has the driver plug the disk into the guest (QMP hot-plug on the
host's agent), then completes both sides (``attached``, the volume ``in-use``), and
answers once the guest has the disk. A failure on the way undoes what was done and
answers a 4xx naming the cause; a site killed on the way leaves the mapping
``attaching``, and the same attach asked again completes it.

A volume of another site (the request's scope names it: ``{volume: Paris}``) is
attached the same way through that site's attachments API, as an NBD export over TLS
made for this attachment (remote_volumes.py, volume_ends.py).

A detach unplugs the disk (the guest releases it first), deletes the attachment and
forgets the mapping; the root volume of a server booted from a volume cannot be
detached.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.policy import require_read, require_write
from edgefed.api.responses import Json
from edgefed.core.errors import BadRequest, Conflict, NotFound
from edgefed.core.ids import is_uuid
from edgefed.drivers.base import DriverError
from edgefed.services.compute.body import invalid, opt_bool, opt_str, read_json, section
from edgefed.services.compute.lookups import get_server
from edgefed.services.compute.microversion import APIVersion, MicroversionRoute, api_version
from edgefed.services.compute.remote_volumes import find_remote
from edgefed.services.compute.state import ComputeState, compute_state
from edgefed.services.compute.volume_ends import end_of
from edgefed.store.compute import (
    DeviceInUse,
    NoFreeDevice,
    ServerRecord,
    ServerVolumes,
    VolumeMapping,
    mappings_of,
)

router = APIRouter(route_class=MicroversionRoute)

POLICY = "os_compute_api:os-volumes-attachments"
# Nova's: attach and detach while the server is in one of these, with no task under way.
ATTACHABLE = ("active", "paused", "stopped")
DEVICE = re.compile(r"^/dev/x{0,1}[a-z]{0,1}d{0,1}[a-z]+[0-9]*$")


def attachment_view(
    server: ServerRecord, mapping: VolumeMapping, version: APIVersion, *, created: bool = False
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "device": mapping.device,
        "serverId": server.id,
        "volumeId": mapping.volume_id,
    }
    if created or not version.at_least("2.89"):
        view["id"] = mapping.volume_id
    if version.at_least("2.70"):
        view["tag"] = mapping.tag
    if version.at_least("2.79"):
        view["delete_on_termination"] = mapping.delete_on_termination
    if version.at_least("2.89") and not created:
        view["attachment_id"] = mapping.attachment_id
        view["bdm_uuid"] = mapping.bdm_id
    return view


def _check_state(principal: Principal, server: ServerRecord, action: str) -> None:
    if server.locked and not principal.is_admin:
        raise Conflict(f"Instance {server.id} is locked")
    if server.task_state is not None:
        raise Conflict(
            f"Cannot '{action}' instance {server.id} while it is in task_state {server.task_state}"
        )
    if server.vm_state not in ATTACHABLE or server.host is None:
        raise Conflict(
            f"Cannot '{action}' instance {server.id} while it is in vm_state {server.vm_state}"
        )


async def _record(
    state: ComputeState, request: Request, principal: Principal, server: ServerRecord, action: str
) -> None:
    await state.servers.record_action(
        server_id=server.id,
        action=action,
        request_id=request.headers.get("x-openstack-request-id", "") or "req-local",
        user_id=principal.user_id,
        project_id=server.project_id,
    )


async def _server(
    state: ComputeState, principal: Principal, server_id: str, verb: str, *, write: bool = False
) -> ServerRecord:
    """The server whose volumes are asked for, once the policy allows ``verb`` on them."""
    server = await get_server(state, principal, server_id)
    allowed = require_write if write else require_read
    allowed(principal, server.project_id, f"{POLICY}:{verb}")
    return server


def _mapping(server: ServerRecord, volume_id: str) -> VolumeMapping:
    for mapping in mappings_of(server.volumes):
        if mapping.volume_id == volume_id:
            return mapping
    raise NotFound(f"Volume {volume_id} is not attached to instance {server.id}.")


@router.get("/v2.1/servers/{server_id}/os-volume_attachments")
async def list_attachments(
    server_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
    version: APIVersion = Depends(api_version),
) -> Json:
    server = await _server(state, principal, server_id, "index")
    views = [attachment_view(server, m, version) for m in mappings_of(server.volumes)]
    try:
        offset = int(request.query_params.get("offset", "0"))
        limit = int(request.query_params.get("limit", str(len(views))))
    except ValueError as exc:
        raise BadRequest("limit and offset must be integers") from exc
    if offset < 0 or limit < 0:
        raise BadRequest("limit and offset must be >= 0")
    return Json({"volumeAttachments": views[offset : offset + limit]})


@router.get("/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}")
async def show_attachment(
    server_id: str,
    volume_id: str,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
    version: APIVersion = Depends(api_version),
) -> Json:
    server = await _server(state, principal, server_id, "show")
    return Json({"volumeAttachment": attachment_view(server, _mapping(server, volume_id), version)})


def _attach_body(data: dict[str, Any], version: APIVersion) -> dict[str, Any]:
    volume_id = data.get("volumeId")
    if not isinstance(volume_id, str) or not is_uuid(volume_id):
        raise invalid("volumeId", f"{volume_id!r}. It is not a volume UUID")
    device = opt_str(data, "device")
    if device is not None and not DEVICE.match(device):
        raise invalid("device", f"{device!r} does not match a device name like /dev/vdb")
    allowed = {"volumeId", "device"}
    if version.at_least("2.49"):
        allowed.add("tag")
    if version.at_least("2.79"):
        allowed.add("delete_on_termination")
    extra = sorted(set(data) - allowed)
    if extra:
        raise BadRequest(
            f"Invalid input for field/attribute volumeAttachment. Additional properties are "
            f"not allowed ({', '.join(map(repr, extra))} were unexpected)"
        )
    return {
        "volume_id": volume_id,
        "device": device,
        "tag": opt_str(data, "tag", max_len=60),
        "delete_on_termination": bool(opt_bool(data, "delete_on_termination")),
    }


async def _locate(
    state: ComputeState, request: Request, principal: Principal, volume_id: str
) -> str | None:
    """The site holding the volume: None for this site's, else the scope's volume site."""
    local = state.ctx.volumes
    if local is not None and await local.find(volume_id=volume_id, principal=principal):
        return None
    remote = await find_remote(state.ctx, request, principal, volume_id)
    if remote is None:
        raise NotFound(f"Volume {volume_id} could not be found.")
    if remote.status != "available" and not remote.multiattach:
        raise BadRequest(
            f"Invalid volume: Volume {volume_id} at {remote.site} status must be available "
            f"to attach, but the current status is {remote.status}."
        )
    return remote.site


async def attach_volume(
    state: ComputeState,
    request: Request,
    principal: Principal,
    server: ServerRecord,
    asked: dict[str, Any],
) -> VolumeMapping:
    """Attach the volume to the server's guest, or finish an attach a crash interrupted."""
    volume_id = asked["volume_id"]
    site = await _locate(state, request, principal, volume_id)
    repo = ServerVolumes(state.ctx.store)
    try:
        mapping, new = await repo.add(
            server.id,
            volume_id=volume_id,
            device=asked["device"],
            delete_on_termination=asked["delete_on_termination"],
            tag=asked["tag"],
            site=site,
        )
    except DeviceInUse as exc:
        raise BadRequest(f"The supplied device path ({exc}) is in use.") from exc
    except NoFreeDevice as exc:
        raise BadRequest(f"Instance {server.id} has no free device name for a volume.") from exc
    if not new and mapping.state == "attached":
        raise BadRequest(
            f"Invalid volume: volume {volume_id} is already attached to instance {server.id}."
        )
    end = end_of(state.ctx, mapping, principal)
    if end is None:
        await repo.remove(server.id, volume_id)
        raise BadRequest("This site has no volume service: volumes cannot be attached.")
    try:
        if mapping.attachment_id is not None:  # an attach interrupted: start its half again
            await end.release(mapping.attachment_id)
        device, connected = await end.connect(mapping, server)
    except BaseException:
        await repo.remove(server.id, volume_id)
        raise
    mapping = await repo.change(server.id, volume_id, **connected)
    try:
        await state.driver.attach_volume(server.id, device)
    except DriverError as exc:
        await end.release(connected["attachment_id"])
        await repo.remove(server.id, volume_id)
        raise Conflict(f"Volume {volume_id} could not be attached to {server.id}: {exc}") from exc
    await end.complete(mapping)
    return await repo.change(server.id, volume_id, state="attached")


@router.post("/v2.1/servers/{server_id}/os-volume_attachments")
async def create_attachment(
    server_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
    version: APIVersion = Depends(api_version),
) -> Json:
    body = await read_json(request)
    asked = _attach_body(section(body, "volumeAttachment"), version)
    server = await _server(state, principal, server_id, "create", write=True)
    _check_state(principal, server, "attach_volume")
    mapping = await attach_volume(state, request, principal, server, asked)
    await _record(state, request, principal, server, "attach_volume")
    return Json({"volumeAttachment": attachment_view(server, mapping, version, created=True)})


@router.delete("/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}")
async def delete_attachment(
    server_id: str,
    volume_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Response:
    server = await _server(state, principal, server_id, "delete", write=True)
    mapping = _mapping(server, volume_id)
    if mapping.boot_index == 0:
        raise BadRequest(f"Cannot detach a root device volume ({volume_id}).")
    _check_state(principal, server, "detach_volume")
    try:
        await state.driver.detach_volume(server.id, volume_id)
    except DriverError as exc:
        raise Conflict(f"Volume {volume_id} could not be detached from {server.id}: {exc}") from exc
    end = end_of(state.ctx, mapping)
    if mapping.attachment_id is not None and end is not None:
        await end.release(mapping.attachment_id)
    await ServerVolumes(state.ctx.store).remove(server.id, volume_id)
    await _record(state, request, principal, server, "detach_volume")
    return Response(status_code=202)
