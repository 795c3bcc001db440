"""The image service's tables and records (Glance's data model, kept small).

Metadata lives in the site database; data lives in the site's data directory, one
content-addressed blob per distinct content (``edgefed.store.blobs``). ``origin`` names
the sync source that owns an image (None: a local image); such an image is read-only
here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, ForeignKey, Integer, String, Table

from edgefed.store.schema import JsonDoc, UtcDateTime, metadata

images = Table(
    "images",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(255), nullable=True),
    Column("status", String(30), nullable=False),
    Column("size", BigInteger, nullable=True),
    Column("virtual_size", BigInteger, nullable=True),
    Column("disk_format", String(20), nullable=True),
    Column("container_format", String(20), nullable=True),
    Column("owner", String(64), nullable=True, index=True),
    Column("visibility", String(20), nullable=False),
    Column("protected", Boolean, nullable=False, default=False),
    Column("os_hidden", Boolean, nullable=False, default=False),
    Column("min_disk", Integer, nullable=False, default=0),
    Column("min_ram", Integer, nullable=False, default=0),
    Column("checksum", String(32), nullable=True),
    Column("os_hash_algo", String(64), nullable=True),
    Column("os_hash_value", String(128), nullable=True),
    Column("blob_sha256", String(64), nullable=True, index=True),
    Column("properties", JsonDoc, nullable=False),
    Column("tags", JsonDoc, nullable=False),
    # The sync source that owns this image (None: a local image). Set => read-only here.
    Column("origin", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

image_members = Table(
    "image_members",
    metadata,
    Column("image_id", String(36), ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    Column("member_id", String(64), primary_key=True, index=True),
    Column("status", String(20), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)


@dataclass(frozen=True, slots=True)
class ImageRecord:
    id: str
    name: str | None
    status: str
    size: int | None
    virtual_size: int | None
    min_disk: int
    min_ram: int
    disk_format: str | None
    container_format: str | None
    owner: str | None
    visibility: str
    protected: bool
    os_hidden: bool
    checksum: str | None
    os_hash_algo: str | None
    os_hash_value: str | None
    properties: dict[str, Any]
    tags: tuple[str, ...]
    created_at: dt.datetime
    updated_at: dt.datetime
    blob_sha256: str | None
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class MemberRecord:
    image_id: str
    member_id: str
    status: str
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class NewImage:
    """A new (``queued``) image: what a caller chooses; the rest is the store's."""

    owner: str | None
    name: str | None = None
    # None: a new UUID.
    id: str | None = None
    disk_format: str | None = None
    container_format: str | None = None
    visibility: str = "shared"
    min_disk: int = 0
    min_ram: int = 0
    protected: bool = False
    os_hidden: bool = False
    tags: Sequence[str] = ()
    properties: Mapping[str, Any] = field(default_factory=dict)
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class NewMember:
    member_id: str
    status: str = "pending"
