"""A create's ``block_device_mapping_v2``, checked as Nova checks it.

What a server boots from: an image copied to a local disk (``imageRef``, or a mapping
``image`` → ``local`` with boot index 0), or a volume (``volume`` → ``volume``, or a
new volume made of an image or empty: ``image``/``blank`` → ``volume`` with a
``volume_size``, which ``openstack server create --boot-from-volume N`` sends). Other
``volume`` mappings are volumes attached from the start. Local blank mappings (the
flavor's ephemeral and swap disks) are the flavor's business and pass unread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgefed.core.errors import BadRequest
from edgefed.core.ids import is_uuid
from edgefed.services.compute.body import invalid

SOURCES = ("image", "volume", "snapshot", "blank")
INVALID_BOOT = (
    "Block Device Mapping is Invalid: Boot sequence for the instance and image/block "
    "device mapping combination is not valid."
)


@dataclass(frozen=True, slots=True)
class VolumeRequest:
    """One volume the server gets: an existing one (``volume_id``) or one to make."""

    source_type: str  # volume, image, blank
    volume_id: str | None = None
    image_id: str | None = None
    size_gb: int | None = None
    boot_index: int | None = None
    delete_on_termination: bool = False
    device: str | None = None
    tag: str | None = None

    @property
    def root(self) -> bool:
        return self.boot_index == 0


def _boot_index(raw: Any) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        index = int(raw)
    except (TypeError, ValueError) as exc:
        raise invalid("boot_index", f"{raw!r} is not an integer") from exc
    return None if index < 0 else index


def _size(raw: Any) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        size = int(raw)
    except (TypeError, ValueError) as exc:
        raise invalid("volume_size", f"{raw!r} is not an integer") from exc
    if size < 1:
        raise invalid("volume_size", f"{raw!r} is less than the minimum of 1")
    return size


def _flag(raw: Any) -> bool:
    return raw is True or (isinstance(raw, str) and raw.lower() in ("true", "1", "yes"))


def parse_block_devices(data: dict[str, Any]) -> tuple[str | None, list[VolumeRequest]]:
    """(the image a local root disk is copied from, the volumes asked for)."""
    image_ref = data.get("imageRef") or None
    bdms = data.get("block_device_mapping_v2") or []
    if not isinstance(bdms, list):
        raise invalid("block_device_mapping_v2", f"{bdms!r} is not of type 'array'")
    volumes: list[VolumeRequest] = []
    for bdm in bdms:
        if not isinstance(bdm, dict):
            raise invalid("block_device_mapping_v2", f"{bdm!r} is not of type 'object'")
        source = bdm.get("source_type") or "volume"
        if source not in SOURCES:
            raise invalid("source_type", f"{source!r} is not one of {list(SOURCES)}")
        default_destination = "volume" if source in ("volume", "snapshot") else "local"
        destination = bdm.get("destination_type") or default_destination
        if destination not in ("local", "volume"):
            raise invalid("destination_type", f"{destination!r} is not one of local, volume")
        boot_index = _boot_index(bdm.get("boot_index"))
        uuid = bdm.get("uuid")
        if destination == "local":
            if source == "image" and boot_index == 0 and not image_ref:
                image_ref = str(uuid or "")
            elif source not in ("image", "blank"):
                raise BadRequest(f"Block Device Mapping is Invalid: {source} cannot be local.")
            continue
        if source == "snapshot":
            raise BadRequest(
                "Block device mappings of volume snapshots are not supported on this site: "
                "make a volume of the snapshot, then boot from that volume."
            )
        if source in ("volume", "image") and not (isinstance(uuid, str) and is_uuid(uuid)):
            raise BadRequest(f"Block Device Mapping is Invalid: {source} {uuid!r} is not a UUID.")
        size = _size(bdm.get("volume_size"))
        if source in ("image", "blank") and size is None:
            raise BadRequest(
                f"Block Device Mapping is Invalid: a {source} mapping to a volume needs a "
                "volume_size."
            )
        device = bdm.get("device_name")
        volumes.append(
            VolumeRequest(
                source_type=source,
                volume_id=uuid if source == "volume" else None,
                image_id=uuid if source == "image" else None,
                size_gb=size,
                boot_index=boot_index,
                delete_on_termination=_flag(bdm.get("delete_on_termination")),
                device=device if isinstance(device, str) and device else None,
                tag=bdm.get("tag") if isinstance(bdm.get("tag"), str) else None,
            )
        )
    roots = [v for v in volumes if v.root]
    if len(roots) > 1 or (roots and image_ref):
        raise BadRequest(INVALID_BOOT)
    if not roots and (not isinstance(image_ref, str) or not is_uuid(image_ref)):
        raise BadRequest("Invalid imageRef provided.")
    return image_ref, volumes
