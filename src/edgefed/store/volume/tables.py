"""The volume service's tables and records (Cinder's data model, kept small).

Metadata of volumes and snapshots is one table of (owner id, key, value) rows rather
than a JSON document in the volume's row, so that a list filters on it in SQL
(``?metadata={"tier": "gold"}``) the same way on SQLite and PostgreSQL. Volume types
keep their extra specs as a document: nothing filters on them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Boolean, Column, Integer, String, Table, Text

from edgefed.store.schema import JsonDoc, UtcDateTime, metadata

# The type every site has, made on first use; volumes without a type get it.
DEFAULT_TYPE_NAME = "__DEFAULT__"

volume_types = Table(
    "vol_types",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    Column("is_public", Boolean, nullable=False, default=True),
    Column("extra_specs", JsonDoc, nullable=False),
    # The sync source that delivered it (read-only here), or None for this site's own.
    Column("origin", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

volumes = Table(
    "vol_volumes",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(64), nullable=False, index=True),
    Column("user_id", String(64), nullable=False, default=""),
    Column("name", String(255), nullable=True),
    Column("description", Text, nullable=True),
    Column("size", Integer, nullable=False),
    Column("status", String(32), nullable=False),
    # detached | attached (Cinder's attach_status: whether any attachment completed)
    Column("attach_status", String(16), nullable=False, default="detached"),
    Column("availability_zone", String(255), nullable=False),
    Column("volume_type_id", String(36), nullable=False, index=True),
    Column("bootable", Boolean, nullable=False, default=False),
    Column("readonly", Boolean, nullable=False, default=False),
    Column("multiattach", Boolean, nullable=False, default=False),
    Column("snapshot_id", String(36), nullable=True, index=True),
    Column("source_volid", String(36), nullable=True),
    Column("image_id", String(36), nullable=True),
    # What the image was when the volume was made of it (Cinder's volume_image_metadata).
    Column("image_metadata", JsonDoc, nullable=False),
    Column("migration_status", String(32), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

snapshots = Table(
    "vol_snapshots",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("volume_id", String(36), nullable=False, index=True),
    Column("project_id", String(64), nullable=False, index=True),
    Column("user_id", String(64), nullable=False, default=""),
    Column("name", String(255), nullable=True),
    Column("description", Text, nullable=True),
    Column("size", Integer, nullable=False),
    Column("status", String(32), nullable=False),
    Column("progress", String(8), nullable=False, default="100%"),
    Column("volume_type_id", String(36), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Metadata of volumes and snapshots (their ids are UUIDs: one key space).
resource_metadata = Table(
    "vol_metadata",
    metadata,
    Column("resource_id", String(36), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("value", String(255), nullable=False),
)

attachments = Table(
    "vol_attachments",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("volume_id", String(36), nullable=False, index=True),
    Column("project_id", String(64), nullable=False),
    Column("instance_uuid", String(36), nullable=True),
    Column("attached_host", String(255), nullable=True),
    Column("mountpoint", String(255), nullable=True),
    # rw | ro | null (not chosen yet)
    Column("attach_mode", String(8), nullable=False, default="null"),
    # reserved | attaching | attached | detaching
    Column("attach_status", String(16), nullable=False),
    Column("connector", JsonDoc, nullable=False),
    Column("connection_info", JsonDoc, nullable=False),
    Column("attach_time", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

volume_quotas = Table(
    "vol_quotas",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("resource", String(255), primary_key=True),
    Column("hard_limit", Integer, nullable=False),
)


@dataclass(frozen=True, slots=True)
class VolumeTypeRecord:
    id: str
    name: str
    description: str | None
    is_public: bool
    extra_specs: dict[str, str]
    created_at: dt.datetime
    updated_at: dt.datetime
    origin: str | None = None  # the sync source that delivered it


@dataclass(frozen=True, slots=True)
class NewVolumeType:
    name: str
    description: str | None = None
    is_public: bool = True
    extra_specs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VolumeRecord:
    id: str
    project_id: str
    user_id: str
    name: str | None
    description: str | None
    size: int
    status: str
    attach_status: str
    availability_zone: str
    volume_type_id: str
    bootable: bool
    readonly: bool
    multiattach: bool
    snapshot_id: str | None
    source_volid: str | None
    image_id: str | None
    image_metadata: dict[str, Any]
    migration_status: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    metadata: dict[str, str] = field(default_factory=dict)
    # The name of its type (from the types table).
    volume_type_name: str = ""
    # Its attachments, oldest first (from the attachments table).
    attachments: tuple[AttachmentRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class NewVolume:
    project_id: str
    user_id: str
    size: int
    availability_zone: str
    volume_type_id: str
    name: str | None = None
    description: str | None = None
    status: str = "available"
    bootable: bool = False
    multiattach: bool = False
    snapshot_id: str | None = None
    source_volid: str | None = None
    image_id: str | None = None
    image_metadata: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    id: str | None = None  # a new one, unless the volume keeps its id (a relocation)


@dataclass(frozen=True, slots=True)
class SnapshotRecord:
    id: str
    volume_id: str
    project_id: str
    user_id: str
    name: str | None
    description: str | None
    size: int
    status: str
    progress: str
    volume_type_id: str
    created_at: dt.datetime
    updated_at: dt.datetime
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NewSnapshot:
    volume_id: str
    project_id: str
    user_id: str
    size: int
    volume_type_id: str
    name: str | None = None
    description: str | None = None
    status: str = "available"
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AttachmentRecord:
    id: str
    volume_id: str
    project_id: str
    instance_uuid: str | None
    attached_host: str | None
    mountpoint: str | None
    attach_mode: str
    attach_status: str
    connector: dict[str, Any]
    connection_info: dict[str, Any]
    attach_time: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
