"""``POST /v3/volumes/{id}/action``: one route, the action named by the body's key.

Here: extend, bootable and read-only flags, reset status (admin), force delete
(admin) and upload to an image; the attach and detach actions Nova calls are in
``attach_actions.py``. An action the site does not offer is a 400 naming it, as Cinder
answers one it does not know.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.bodies import read_object
from edgefed.api.resource import Call, routes
from edgefed.api.responses import Json
from edgefed.api.scope_honour import require_here
from edgefed.core.errors import BadRequest, Unavailable
from edgefed.services.volume import attach_actions
from edgefed.services.volume import microversion as mv
from edgefed.services.volume.cinder import (
    CINDER,
    boolean,
    invalid_field,
    invalid_input,
    invalid_volume,
    optional_text,
    over_limit,
    stamp,
    version,
)
from edgefed.services.volume.pool import check_room
from edgefed.services.volume.quotas import check_per_volume, volume_limits
from edgefed.services.volume.state import state_of
from edgefed.services.volume.types import VOLUME_TYPE, types_of
from edgefed.services.volume.volumes import VOLUME, remove_volume
from edgefed.store.volume import Demand, OverLimit, StateConflict, VolumeRecord, Volumes

Handler = Callable[[Call, Volumes, VolumeRecord, Any], Awaitable[Response]]
VOLUME_STATUSES = frozenset(
    "creating available deleting error error_deleting error_managing managing attaching "
    "in-use detaching maintenance reserved restoring-backup error_restoring uploading "
    "downloading retyping extending error_extending".split()
)
# Cinder's formats of an upload: raw as it is, the others converted by qemu-img.
UPLOAD_FORMATS = ("raw", "qcow2", "vmdk", "vdi", "vhd", "vhdx")


def _object(body: Any, action: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise invalid_field(action, body, f"{body!r} is not of type 'object'")
    return body


async def extend(call: Call, repo: Volumes, volume: VolumeRecord, body: Any) -> Response:
    data = _object(body, "os-extend")
    new_size = data.get("new_size")
    if isinstance(new_size, bool) or not isinstance(new_size, int | str):
        raise invalid_field("os-extend/new_size", new_size, "'new_size' is a required property")
    try:
        size = int(new_size)
    except ValueError as exc:
        raise invalid_field("os-extend/new_size", new_size, "not an integer") from exc
    if size > 2**31 - 1:
        raise invalid_field("os-extend/new_size", new_size, "is greater than the maximum")
    if size <= volume.size:
        raise invalid_input(
            f"New size for extend must be greater than current size. (current: "
            f"{volume.size}, extended: {size})."
        )
    statuses = ("available", "in-use") if version(call) >= mv.Version(3, 42) else ("available",)
    if volume.status not in statuses:
        expected = " or ".join(f"'{s}'" for s in statuses)
        raise invalid_volume(
            f"Volume {volume.id} status must be {expected} to extend, currently {volume.status}."
        )
    limits = await volume_limits(call, volume.project_id)
    check_per_volume(limits, size)
    await check_room(call.ctx, size - volume.size)
    try:
        await repo.transition(
            volume.id,
            expect={"status": statuses, "size": (volume.size,)},
            values={"size": size},
            demand=Demand(kind="", gigabytes=size - volume.size, type_name=volume.volume_type_name),
            limits=limits,
        )
    except OverLimit as exc:
        raise over_limit(exc, what="volumes") from exc
    except StateConflict as exc:
        raise invalid_volume(f"Volume {volume.id} status must be available to extend.") from exc
    try:
        await state_of(call).backend.extend(volume_id=volume.id, size_gb=size)
    except OSError as exc:
        await repo.transition(volume.id, expect={}, values={"status": "error_extending"})
        raise invalid_volume(f"the volume's data could not be extended: {exc}") from exc
    return Response(status_code=202)


async def set_bootable(call: Call, repo: Volumes, volume: VolumeRecord, body: Any) -> Response:
    data = _object(body, "os-set_bootable")
    if "bootable" not in data:
        raise invalid_field("os-set_bootable", data, "'bootable' is a required property")
    await repo.transition(
        volume.id, expect={}, values={"bootable": boolean(data["bootable"], "bootable")}
    )
    return Response(status_code=200)


async def update_readonly(call: Call, repo: Volumes, volume: VolumeRecord, body: Any) -> Response:
    data = _object(body, "os-update_readonly_flag")
    if "readonly" not in data:
        raise invalid_field("os-update_readonly_flag", data, "'readonly' is a required property")
    readonly = boolean(data["readonly"], "readonly")
    try:
        await repo.transition(
            volume.id, expect={"status": ("available",)}, values={"readonly": readonly}
        )
    except StateConflict as exc:
        raise invalid_volume(
            f"Volume {volume.id} status must be available to update readonly flag, but "
            f"current status is: {exc.status}."
        ) from exc
    return Response(status_code=202)


async def reset_status(call: Call, repo: Volumes, volume: VolumeRecord, body: Any) -> Response:
    if not call.principal.is_admin:
        raise call.refuse("reset_status", "admin role required",
                          rule="volume_extension:volume_admin_actions:reset_status")  # fmt: skip
    data = _object(body, "os-reset_status")
    values: dict[str, Any] = {}
    if "status" in data:
        if data["status"] not in VOLUME_STATUSES:
            raise invalid_input("Must specify a valid status")
        values["status"] = data["status"]
    if "attach_status" in data:
        if data["attach_status"] not in ("attached", "detached"):
            raise invalid_input("Must specify a valid attach status")
        values["attach_status"] = data["attach_status"]
    if "migration_status" in data:
        values["migration_status"] = optional_text(data, "migration_status", max_len=32)
    if not values:
        raise invalid_input(
            "Must specify 'status', 'attach_status' or 'migration_status' for update."
        )
    await repo.transition(volume.id, expect={}, values=values)
    return Response(status_code=202)


async def force_delete(call: Call, repo: Volumes, volume: VolumeRecord, body: Any) -> Response:
    if not call.principal.is_admin:
        raise call.refuse("force_delete", "admin role required",
                          rule="volume_extension:volume_admin_actions:force_delete")  # fmt: skip
    await remove_volume(call, repo, volume, statuses=(volume.status,), cascade=False)
    return Response(status_code=202)


async def upload_image(call: Call, repo: Volumes, volume: VolumeRecord, body: Any) -> Response:
    """The volume's data as a new image of the caller's project, in the disk format
    asked (converted by qemu-img unless raw). The upload is done before the answer."""
    data = _object(body, "os-volume_upload_image")
    name = optional_text(data, "image_name")
    if not name:
        raise invalid_field(
            "os-volume_upload_image/image_name", name, "'image_name' is a required property"
        )
    disk_format = data.get("disk_format") or "raw"
    container_format = data.get("container_format") or "bare"
    if disk_format not in UPLOAD_FORMATS:
        raise invalid_input(
            f"Invalid disk-format '{disk_format}' is specified. Allowed disk-formats are "
            f"{', '.join(UPLOAD_FORMATS)}."
        )
    force = boolean(data.get("force", False), "force")
    visibility, protected = "private", False
    if version(call) >= mv.UPLOAD_VISIBILITY:
        visibility = data.get("visibility") or "private"
        if visibility not in ("public", "private", "shared", "community"):
            raise invalid_input(f"Invalid visibility {visibility}.")
        protected = boolean(data.get("protected", False), "protected")
    require_here(
        call.ctx, call.request.scope, service="image", what="the images a volume is uploaded to"
    )
    images = call.ctx.images
    if images is None:
        raise Unavailable("The image service is not running on this site.")
    statuses = ("available", "in-use") if force else ("available",)
    try:
        await repo.transition(
            volume.id, expect={"status": statuses}, values={"status": "uploading"}
        )
    except StateConflict as exc:
        raise invalid_volume(
            f"Volume {volume.id} status must be available, but current status is: {exc.status}."
        ) from exc
    exports = call.ctx.settings.data_dir / "volumes" / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=exports) as directory:
            try:
                data_file = await state_of(call).backend.export_image(
                    volume_id=volume.id, disk_format=disk_format, directory=Path(directory)
                )
            except ValueError as exc:
                raise invalid_volume(f"its data could not be exported: {exc}") from exc
            image = await images.create_from_file(
                principal=call.principal,
                name=name,
                disk_format=disk_format,
                container_format=container_format,
                visibility=visibility,
                protected=protected,
                data_file=data_file,
            )
    finally:
        await repo.transition(
            volume.id, expect={"status": ("uploading",)}, values={"status": volume.status}
        )
    vtype = await types_of(call).get(id=volume.volume_type_id)
    answer: dict[str, Any] = {
        "id": volume.id,
        "updated_at": stamp(volume.updated_at),
        "status": "uploading",
        "display_description": volume.description,
        "size": volume.size,
        "volume_type": VOLUME_TYPE.view(vtype, call) if vtype else None,
        "image_id": image.id,
        "container_format": container_format,
        "disk_format": disk_format,
        "image_name": name,
    }
    if version(call) >= mv.UPLOAD_VISIBILITY:
        answer.update(protected=protected, visibility=visibility)
    return Json({"os-volume_upload_image": answer}, status_code=202)


ACTIONS: dict[str, Handler] = {
    "os-extend": extend,
    "os-set_bootable": set_bootable,
    "os-update_readonly_flag": update_readonly,
    "os-reset_status": reset_status,
    "os-force_delete": force_delete,
    "os-volume_upload_image": upload_image,
    **attach_actions.ACTIONS,
}


async def volume_action(request: Request) -> Response:
    """Act on a volume: the body's one key names the action (os-extend, os-attach…)."""
    call = await routes.begin(VOLUME, request, "action")
    body = await read_object(request, CINDER.body)
    if len(body) != 1:
        raise BadRequest("Malformed request body: one action is expected.")
    ((name, args),) = body.items()
    handler = ACTIONS.get(name)
    if handler is None:
        raise BadRequest(f"There is no such action: {name}")
    repo = VOLUME.repository(call)
    volume = await VOLUME.find(call, call.path("volume_id"), repo)
    VOLUME.access.check_write(call, volume, name)
    return await handler(call, repo, volume, args)
