"""How images and members look on the wire (Glance v2 documents)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from edgefed.store.image import ImageRecord, MemberRecord


def timestamp(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def image_view(record: ImageRecord) -> dict[str, Any]:
    """Glance's image document: base attributes, then extra properties at the top level."""
    doc: dict[str, Any] = dict(record.properties)
    doc.update(
        {
            "id": record.id,
            "name": record.name,
            "status": record.status,
            "visibility": record.visibility,
            "protected": record.protected,
            "os_hidden": record.os_hidden,
            "owner": record.owner,
            "container_format": record.container_format,
            "disk_format": record.disk_format,
            "min_disk": record.min_disk,
            "min_ram": record.min_ram,
            "size": record.size,
            "virtual_size": record.virtual_size,
            "checksum": record.checksum,
            "os_hash_algo": record.os_hash_algo,
            "os_hash_value": record.os_hash_value,
            "tags": list(record.tags),
            "created_at": timestamp(record.created_at),
            "updated_at": timestamp(record.updated_at),
            "self": f"/v2/images/{record.id}",
            "file": f"/v2/images/{record.id}/file",
            "schema": "/v2/schemas/image",
        }
    )
    if record.origin is not None:
        doc["edgefed:origin"] = record.origin
    return doc


def member_view(member: MemberRecord) -> dict[str, Any]:
    return {
        "image_id": member.image_id,
        "member_id": member.member_id,
        "status": member.status,
        "created_at": timestamp(member.created_at),
        "updated_at": timestamp(member.updated_at),
        "schema": "/v2/schemas/member",
    }
