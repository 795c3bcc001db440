"""Volumes, snapshots and attachments as Cinder shows them, at the version asked."""

from __future__ import annotations

from typing import Any

from edgefed.api.resource import Call
from edgefed.services.volume import microversion as mv
from edgefed.services.volume.cinder import stamp, version
from edgefed.services.volume.state import state_of
from edgefed.store.volume import AttachmentRecord, SnapshotRecord, VolumeRecord


def links(call: Call, collection: str, id: str) -> list[dict[str, str]]:
    base = f"{call.ctx.public_url}/volume"
    return [
        {"href": f"{base}/v3/{collection}/{id}", "rel": "self"},
        {"href": f"{base}/{collection}/{id}", "rel": "bookmark"},
    ]


def attached(call: Call, attachment: AttachmentRecord) -> dict[str, Any]:
    """An attachment as a volume lists it (``attachments`` of the volume)."""
    return {
        "id": attachment.volume_id,
        "attachment_id": attachment.id,
        "volume_id": attachment.volume_id,
        "server_id": attachment.instance_uuid,
        "host_name": attachment.attached_host if call.principal.is_admin else None,
        "device": attachment.mountpoint,
        "attached_at": stamp(attachment.attach_time),
    }


# Attributes Cinder's extensions add to show and the lists, not to create and update.
EXTENSION_ATTRIBUTES = (
    "os-vol-tenant-attr:tenant_id",
    "os-vol-host-attr:host",
    "os-vol-mig-status-attr:migstat",
    "os-vol-mig-status-attr:name_id",
    "volume_image_metadata",
)


def volume_view(volume: VolumeRecord, call: Call) -> dict[str, Any]:
    at = version(call)
    admin = call.principal.is_admin
    view: dict[str, Any] = {
        "id": volume.id,
        "status": volume.status,
        "size": volume.size,
        "availability_zone": volume.availability_zone,
        "created_at": stamp(volume.created_at),
        "updated_at": stamp(volume.updated_at),
        "name": volume.name,
        "description": volume.description,
        "volume_type": volume.volume_type_name,
        "snapshot_id": volume.snapshot_id,
        "source_volid": volume.source_volid,
        "metadata": dict(volume.metadata),
        "links": links(call, "volumes", volume.id),
        "user_id": volume.user_id,
        "bootable": str(volume.bootable).lower(),
        "encrypted": False,
        "replication_status": None,
        "consistencygroup_id": None,
        "multiattach": volume.multiattach,
        "attachments": [
            attached(call, a) for a in volume.attachments if a.attach_status == "attached"
        ],
        "os-vol-tenant-attr:tenant_id": volume.project_id,
    }
    if volume.image_metadata:
        view["volume_image_metadata"] = dict(volume.image_metadata)
    if admin:
        view["migration_status"] = volume.migration_status
        view["os-vol-host-attr:host"] = state_of(call).host
        view["os-vol-mig-status-attr:migstat"] = volume.migration_status
        view["os-vol-mig-status-attr:name_id"] = None
    if at >= mv.GROUP_ID:
        view["group_id"] = None
    if admin and at >= mv.Version(3, 21):
        view["provider_id"] = None
    if at >= mv.SHARED_TARGETS:
        view["shared_targets"] = False
        view["service_uuid"] = None
    if admin and at >= mv.Version(3, 61):
        view["cluster_name"] = None
    if at >= mv.VOLUME_TYPE_ID:
        view["volume_type_id"] = volume.volume_type_id
    if at >= mv.CONSUMES_QUOTA:
        view["consumes_quota"] = True
    return view


def snapshot_view(snapshot: SnapshotRecord, call: Call) -> dict[str, Any]:
    at = version(call)
    view: dict[str, Any] = {
        "id": snapshot.id,
        "created_at": stamp(snapshot.created_at),
        "updated_at": stamp(snapshot.updated_at),
        "name": snapshot.name,
        "description": snapshot.description,
        "volume_id": snapshot.volume_id,
        "status": snapshot.status,
        "size": snapshot.size,
        "metadata": dict(snapshot.metadata),
        "os-extended-snapshot-attributes:project_id": snapshot.project_id,
        "os-extended-snapshot-attributes:progress": snapshot.progress,
    }
    if at >= mv.Version(3, 14):
        view["group_snapshot_id"] = None
    if at >= mv.Version(3, 41):
        view["user_id"] = snapshot.user_id
    if at >= mv.CONSUMES_QUOTA:
        view["consumes_quota"] = True
    return view


def attachment_view(attachment: AttachmentRecord, *, detail: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": attachment.id,
        "status": attachment.attach_status,
        "instance": attachment.instance_uuid,
        "volume_id": attachment.volume_id,
    }
    if detail:
        view.update(
            attached_at=stamp(attachment.attach_time) or "",
            detached_at="",
            attach_mode=attachment.attach_mode,
            connection_info=dict(attachment.connection_info),
        )
    return view
