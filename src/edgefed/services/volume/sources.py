"""Where a new volume's data comes from: nothing, a snapshot, another volume or an
image; what each one decides (the default size and type, bootable, the image's
metadata) and refuses (a source in the wrong status, a volume too small for it)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefed.api.resource import Call
from edgefed.api.scope_honour import require_here
from edgefed.core.errors import BadRequest, NotFound
from edgefed.services.volume.cinder import invalid_input, invalid_volume
from edgefed.services.volume.state import state_of
from edgefed.store.volume import Snapshots, Volumes

GIB = 1 << 30


@dataclass(frozen=True, slots=True)
class Source:
    size: int | None = None
    type_id: str | None = None
    bootable: bool = False
    snapshot_id: str | None = None
    volume_id: str | None = None
    image_id: str | None = None
    image_metadata: dict[str, Any] = field(default_factory=dict)
    # What the backend copies from (``snapshot:<id>`` or a volume id), if anything.
    backend_ref: str | None = None
    # The image's bytes on this site, and their format, for a volume made of an image.
    image_file: Path | None = None
    image_format: str = "raw"
    # The smallest volume the source fits in, and the refusal for a smaller one.
    min_size: int = 0
    too_small: str = ""

    def check_size(self, size: int) -> None:
        if size < self.min_size:
            raise invalid_input(self.too_small.format(size=size))


async def source_of(call: Call, data: dict[str, Any]) -> Source:
    given = [k for k in ("snapshot_id", "source_volid", "imageRef", "image_id") if data.get(k)]
    if "imageRef" in given and "image_id" in given:
        given.remove("image_id")
    if len(given) > 1:
        raise invalid_input(f"Only one of {', '.join(given)} may be given.")
    if not given:
        return Source()
    kind = given[0]
    ref = data[kind]
    if not isinstance(ref, str):
        raise invalid_input(f"Invalid {kind} provided: {ref!r}.")
    if kind == "snapshot_id":
        return await _from_snapshot(call, ref)
    if kind == "source_volid":
        return await _from_volume(call, ref)
    return await _from_image(call, ref)


async def _from_snapshot(call: Call, snapshot_id: str) -> Source:
    snapshot = await Snapshots(call.ctx.store).get(id=snapshot_id)
    if snapshot is None or not _readable(call, snapshot.project_id):
        raise NotFound(f"Snapshot {snapshot_id} could not be found.")
    if snapshot.status != "available":
        raise BadRequest(
            "Invalid snapshot: Originating snapshot status must be one of 'available' values"
        )
    return Source(
        size=snapshot.size,
        type_id=snapshot.volume_type_id,
        snapshot_id=snapshot.id,
        backend_ref=f"snapshot:{snapshot.id}",
        min_size=snapshot.size,
        too_small=(
            f"Volume size '{{size}}'GB cannot be smaller than the snapshot size "
            f"{snapshot.size}GB. They must be >= original snapshot size."
        ),
    )


async def _from_volume(call: Call, volume_id: str) -> Source:
    volume = await Volumes(call.ctx.store).get(id=volume_id)
    if volume is None or not _readable(call, volume.project_id):
        raise NotFound(f"Volume {volume_id} could not be found.")
    if volume.status not in ("available", "in-use"):
        raise invalid_volume(
            f"Unable to create a volume from an originating source volume when its status "
            f"is {volume.status}."
        )
    return Source(
        size=volume.size,
        type_id=volume.volume_type_id,
        bootable=volume.bootable,
        volume_id=volume.id,
        image_id=volume.image_id,
        image_metadata=dict(volume.image_metadata),
        backend_ref=volume.id,
        min_size=volume.size,
        too_small=(
            f"Volume size '{{size}}'GB cannot be smaller than original volume size "
            f"{volume.size}GB. They must be >= original volume size."
        ),
    )


async def _from_image(call: Call, image_id: str) -> Source:
    # The image is read from this site's image service: a scope naming another is refused.
    require_here(call.ctx, call.request.scope, service="image", what="volumes made from an image")
    images = call.ctx.images
    image = None
    if images is not None:
        image = await images.find(image_id=image_id, principal=call.principal)
    if image is None:
        raise BadRequest("Invalid image identifier or unable to access requested image.")
    if image.status != "active":
        raise invalid_input(f"Image {image.id} is not active.")
    image_file = await images.data_file(image_id=image.id) if images is not None else None
    disk_format = image.disk_format or "raw"
    virtual = image.virtual_size or image.size or 0
    if image_file is not None:
        try:
            virtual = await state_of(call).backend.image_size(
                image_file=image_file, disk_format=disk_format
            )
        except ValueError as exc:
            raise invalid_input(
                f"Image {image.id} cannot be read as {disk_format}: {exc}."
            ) from exc
    data_size = math.ceil(virtual / GIB)
    min_size = max(data_size, image.min_disk)
    if data_size >= image.min_disk:
        too_small = f"Size of specified image {data_size}GB is larger than volume size {{size}}GB."
    else:
        too_small = (
            f"Volume size {{size}}GB cannot be smaller than the image minDisk size "
            f"{image.min_disk}GB."
        )
    return Source(
        bootable=True,
        image_id=image.id,
        image_metadata={
            "image_id": image.id,
            "image_name": image.name or "",
            "checksum": image.checksum or "",
            "container_format": image.container_format or "",
            "disk_format": image.disk_format or "",
            "min_disk": str(image.min_disk),
            "min_ram": str(image.min_ram),
            "size": str(image.size or 0),
        },
        min_size=min_size,
        too_small=too_small,
        image_file=image_file,
        image_format=disk_format,
    )


def _readable(call: Call, project_id: str) -> bool:
    principal = call.principal
    return principal.is_admin or principal.project_id == project_id
