"""The attach and detach actions Nova calls on a volume (before the attachments API,
and still for its connection): reserve, attach, begin/roll detaching, detach,
initialize and terminate a connection.

    available --os-reserve--> attaching --os-attach--> in-use
    in-use --os-begin_detaching--> detaching --os-detach--> available
                                   detaching --os-roll_detaching--> in-use
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.responses import Response

from edgefed.api.resource import Call
from edgefed.api.responses import Json
from edgefed.core.errors import BadRequest, NotFound
from edgefed.services.volume.cinder import (
    invalid_field,
    invalid_volume,
    optional_text,
    server_id,
)
from edgefed.services.volume.remote_attach import drop
from edgefed.services.volume.state import state_of
from edgefed.store.volume import Attachments, StateConflict, VolumeRecord, Volumes

Handler = Callable[[Call, Volumes, VolumeRecord, Any], Awaitable[Response]]
ACCEPTED = 202


def _args(body: Any, action: str) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise invalid_field(action, body, f"{body!r} is not of type 'object', 'null'")
    return body


def mode_of(volume: VolumeRecord, asked: Any) -> str:
    """The attach mode: ``rw`` unless asked ``ro``; a read-only volume only ``ro``."""
    mode = asked or ("ro" if volume.readonly else "rw")
    if mode not in ("rw", "ro"):
        raise BadRequest(
            "Invalid request to attach volume with an invalid mode. Attaching mode should "
            "be 'rw' or 'ro'"
        )
    if volume.readonly and mode != "ro":
        raise BadRequest(f"Invalid attaching mode '{mode}' for volume {volume.id}.")
    return mode


async def reserve(call: Call, repo: Volumes, volume: VolumeRecord, body: Any) -> Response:
    allowed = ("available", "in-use") if volume.multiattach else ("available",)
    try:
        await repo.transition(volume.id, expect={"status": allowed}, values={"status": "attaching"})
    except StateConflict as exc:
        expected = " or ".join(allowed)
        raise invalid_volume(
            f"Volume status must be {expected} to reserve, but the status is {exc.status}."
        ) from exc
    return Response(status_code=ACCEPTED)


async def unreserve(call: Call, repo: Volumes, volume: VolumeRecord, body: Any) -> Response:
    if volume.status == "attaching":
        attached = any(a.attach_status == "attached" for a in volume.attachments)
        status = "in-use" if attached else "available"
        try:
            await repo.transition(
                volume.id, expect={"status": ("attaching",)}, values={"status": status}
            )
        except StateConflict:
            pass  # no longer reserved: nothing to do, as Cinder
    return Response(status_code=ACCEPTED)


async def attach(call: Call, repo: Volumes, volume: VolumeRecord, body: Any) -> Response:
    data = _args(body, "os-attach")
    instance = server_id(data, "instance_uuid")
    host = optional_text(data, "host_name")
    if not instance and not host:
        raise BadRequest("Invalid request to attach volume to an invalid target")
    mountpoint = optional_text(data, "mountpoint")
    if not mountpoint:
        raise invalid_field("os-attach", data, "'mountpoint' is a required property")
    try:
        await Attachments(call.ctx.store).attach_now(
            volume_id=volume.id,
            project_id=volume.project_id,
            instance_uuid=instance,
            host=host,
            mountpoint=mountpoint,
            attach_mode=mode_of(volume, data.get("mode")),
        )
    except StateConflict as exc:
        raise invalid_volume(
            f"Volume {volume.id} status must be available or attaching to attach, but the "
            f"status is {exc.status}."
        ) from exc
    return Response(status_code=ACCEPTED)


async def begin_detaching(call: Call, repo: Volumes, volume: VolumeRecord, body: Any) -> Response:
    try:
        await repo.transition(
            volume.id,
            expect={"status": ("in-use",), "attach_status": ("attached",)},
            values={"status": "detaching"},
        )
    except StateConflict as exc:
        raise invalid_volume(
            "Unable to detach volume. Volume status must be 'in-use' and attach_status must "
            "be 'attached' to detach."
        ) from exc
    return Response(status_code=ACCEPTED)


async def roll_detaching(call: Call, repo: Volumes, volume: VolumeRecord, body: Any) -> Response:
    try:
        await repo.transition(
            volume.id, expect={"status": ("detaching",)}, values={"status": "in-use"}
        )
    except StateConflict:
        pass  # not detaching: nothing to roll back
    return Response(status_code=ACCEPTED)


async def detach(call: Call, repo: Volumes, volume: VolumeRecord, body: Any) -> Response:
    data = _args(body, "os-detach")
    wanted = optional_text(data, "attachment_id")
    found = [a for a in volume.attachments if wanted in (None, a.id)]
    if wanted is None and len(found) > 1:
        raise invalid_volume(
            "Volume has multiple attachments: an attachment_id is needed to detach it."
        )
    if not found:
        raise NotFound(
            f"Volume attachment could not be found with filter: attachment_id = {wanted}."
        )
    try:
        await drop(call.ctx, Attachments(call.ctx.store), found[0])
    except StateConflict as exc:
        raise NotFound(
            f"Volume attachment could not be found with filter: attachment_id = {found[0].id}."
        ) from exc
    return Response(status_code=ACCEPTED)


def _connector(body: Any, action: str) -> dict[str, Any]:
    data = _args(body, action)
    connector = data.get("connector")
    if not isinstance(connector, dict):
        raise invalid_field(f"{action}/connector", connector, "'connector' is a required property")
    return connector


async def initialize_connection(
    call: Call, repo: Volumes, volume: VolumeRecord, body: Any
) -> Response:
    connector = _connector(body, "os-initialize_connection")
    mode = mode_of(volume, connector.get("mode"))
    info = state_of(call).backend.connection_info(volume_id=volume.id, mode=mode)
    return Json({"connection_info": info})


async def terminate_connection(
    call: Call, repo: Volumes, volume: VolumeRecord, body: Any
) -> Response:
    _connector(body, "os-terminate_connection")
    return Response(status_code=ACCEPTED)


ACTIONS: dict[str, Handler] = {
    "os-reserve": reserve,
    "os-unreserve": unreserve,
    "os-attach": attach,
    "os-begin_detaching": begin_detaching,
    "os-roll_detaching": roll_detaching,
    "os-detach": detach,
    "os-initialize_connection": initialize_connection,
    "os-terminate_connection": terminate_connection,
}
