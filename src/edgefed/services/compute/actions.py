"""Server actions (``POST /servers/{id}/action``) and the os-instance-actions log.

Each action checks the server's state the way Nova does (409 "Cannot 'stop' instance …
while it is in vm_state stopped"), records the intent with a compare-and-set on the
task state, answers 202 and lets the lifecycle finish the work.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.responses import Json
from edgefed.api.scope_honour import require_here
from edgefed.api.service import routes_of
from edgefed.core.errors import BadRequest, Conflict, NotFound
from edgefed.services.compute import consoles, diagnostics, moves, relocation_out
from edgefed.services.compute.body import opt_str, read_json, req_str, string_map
from edgefed.services.compute.lookups import get_server, state_conflict
from edgefed.services.compute.microversion import MicroversionRoute, api_version
from edgefed.services.compute.server_views import iso
from edgefed.services.compute.state import ComputeState, compute_state
from edgefed.store.compute import ServerRecord

router = APIRouter(route_class=MicroversionRoute)

# action -> (allowed vm_states, task_state to set)
POWER_ACTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "os-stop": (("active", "error"), "powering-off"),
    "os-start": (("stopped",), "powering-on"),
    "pause": (("active",), "pausing"),
    "unpause": (("paused",), "unpausing"),
    "suspend": (("active",), "suspending"),
    "resume": (("suspended",), "resuming"),
}
NOVA_NAMES = {"os-stop": "stop", "os-start": "start", "os-migrateLive": "live-migration"}


def _state_conflict(server: ServerRecord, action: str) -> Conflict:
    return state_conflict(server, NOVA_NAMES.get(action, action))


async def _begin(
    state: ComputeState, server: ServerRecord, action: str, allowed: tuple[str, ...], task: str
) -> None:
    if server.vm_state not in allowed or server.task_state is not None:
        raise _state_conflict(server, action)
    done = await state.servers.transition(server.id, expect_task=[None], task_state=task)
    if not done:
        fresh = await state.servers.get(server.id)
        raise _state_conflict(fresh or server, action)


@router.post("/v2.1/servers/{server_id}/action")
async def server_action(
    server_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Response:
    body = await read_json(request)
    if len(body) != 1:
        raise BadRequest("There is either no action or more than one action in the request body.")
    action, data = next(iter(body.items()))
    if action == consoles.ACTION:
        # Reads only: no lock check, no instance action recorded (as Nova).
        server = await get_server(state, principal, server_id)
        return await consoles.console_output(state, principal, server, data)
    server = await get_server(state, principal, server_id, write=True)
    if server.locked and not principal.is_admin and action not in ("unlock", "lock"):
        raise Conflict(f"Instance {server.id} is locked")
    reply: Response = Response(status_code=202)
    if action in POWER_ACTIONS:
        allowed, task = POWER_ACTIONS[action]
        await _begin(state, server, action, allowed, task)
        state.lifecycle.start_power_op(server.id, task)
    elif action == "reboot":
        kind = (data or {}).get("type") if isinstance(data, dict) else None
        if not isinstance(kind, str) or kind.upper() not in ("SOFT", "HARD"):
            raise BadRequest(
                "Invalid input for field/attribute type. Value: "
                f"{kind!r}. {kind!r} is not one of ['HARD', 'Hard', 'hard', 'SOFT', 'Soft', 'soft']"
            )
        hard = kind.upper() == "HARD"
        allowed = ("active", "stopped", "paused", "suspended", "error") if hard else ("active",)
        await _begin(state, server, action, allowed, "rebooting_hard" if hard else "rebooting")
        state.lifecycle.start_power_op(server.id, "rebooting_hard" if hard else "rebooting")
    elif action == "createImage":
        reply = await _create_image(request, principal, state, server, data)
    elif action in moves.ACTIONS:
        await moves.begin(request, principal, state, server, action, data)
        if action == "evacuate":  # Nova answers 200, with no body since 2.14
            reply = Response(status_code=200)
    elif action == relocation_out.ACTION:
        reply = await relocation_out.begin(request, principal, state, server, data)
    elif action == "lock":
        reason = None
        if isinstance(data, dict) and api_version(request).at_least("2.73"):
            reason = opt_str(data, "locked_reason", max_len=255)
        await state.servers.update(server.id, locked=True, locked_reason=reason)
    elif action == "unlock":
        await state.servers.update(server.id, locked=False, locked_reason=None)
    else:
        raise BadRequest(f"Unsupported server action: {action}")
    await state.servers.record_action(
        server_id=server.id,
        action=NOVA_NAMES.get(action, action),
        request_id=request.headers.get("x-openstack-request-id", "") or "req-local",
        user_id=principal.user_id,
        project_id=server.project_id,
    )
    return reply


async def _create_image(
    request: Request, principal: Principal, state: ComputeState, server: ServerRecord, data: Any
) -> Response:
    if not isinstance(data, dict):
        raise BadRequest("Invalid input: 'createImage' must be an object")
    name = req_str(data, "name")
    metadata = string_map(data, "metadata")
    if server.vm_state not in ("active", "stopped", "paused", "suspended"):
        raise _state_conflict(server, "createImage")
    require_here(
        state.ctx, request.scope, service="image", what="the snapshots of a server (createImage)"
    )
    source = await state.images.get(server.image_id) if server.image_id else None
    properties: dict[str, Any] = {
        "image_type": "snapshot",
        "instance_uuid": server.id,
        "user_id": principal.user_id,
        "owner_project_name": principal.claims.get("project", {}).get("name", ""),
        **metadata,
    }
    if source is not None:
        properties["base_image_ref"] = source.id
    done = await state.servers.transition(
        server.id, expect_task=[None], task_state="image_snapshot"
    )
    if not done:
        raise _state_conflict(server, "createImage")
    image = await state.images.create(
        owner=server.project_id,
        name=name,
        disk_format=source.disk_format if source else "raw",
        container_format=source.container_format if source else "bare",
        visibility="private",
        min_disk=max(server.disk, source.min_disk if source else 0),
        min_ram=source.min_ram if source else 0,
        properties=properties,
    )
    state.lifecycle.start_snapshot(server.id, image.id)
    location = f"{state.ctx.public_url}/image/v2/images/{image.id}"
    if api_version(request).at_least("2.45"):
        return Json({"image_id": image.id}, status_code=202)
    return Response(status_code=202, headers={"Location": location})


def _action_view(record: Any, with_updated: bool) -> dict[str, Any]:
    view = {
        "action": record.action,
        "instance_uuid": record.server_id,
        "message": record.message,
        "project_id": record.project_id,
        "request_id": record.request_id,
        "start_time": iso(record.start_time),
        "user_id": record.user_id,
    }
    if with_updated:
        view["updated_at"] = iso(record.updated_at or record.start_time)
    return view


@router.get("/v2.1/servers/{server_id}/os-instance-actions")
async def list_instance_actions(
    server_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    server = await state.servers.get(server_id, include_deleted=True)
    if server is None or (not principal.is_admin and principal.project_id != server.project_id):
        raise NotFound(f"Instance {server_id} could not be found.")
    with_updated = api_version(request).at_least("2.58")
    actions = await state.servers.actions(server.id)
    return Json({"instanceActions": [_action_view(a, with_updated) for a in actions]})


@router.get("/v2.1/servers/{server_id}/os-instance-actions/{request_id}")
async def show_instance_action(
    server_id: str,
    request_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    server = await state.servers.get(server_id, include_deleted=True)
    if server is None or (not principal.is_admin and principal.project_id != server.project_id):
        raise NotFound(f"Instance {server_id} could not be found.")
    for record in await state.servers.actions(server.id):
        if record.request_id == request_id:
            view = _action_view(record, api_version(request).at_least("2.58"))
            view["events"] = []
            return Json({"instanceAction": view})
    raise NotFound(f"Action for request_id {request_id} on instance {server_id} not found")


# GET /servers/{id}/diagnostics is this router's too (service.py builds the compute
# router from these modules' routes).
router.routes.extend(routes_of(diagnostics.router))
