"""What the compute repositories return: frozen records, never rows.

The records mirror their tables (a column the record does not name stays in the
store); ``HostUsage`` is computed, the sum of what live servers take from a host.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields
from typing import Any

from sqlalchemy.engine import Row

from edgefed.core.errors import Locked


@dataclass(frozen=True, slots=True)
class FlavorRecord:
    id: str
    name: str
    vcpus: int
    ram: int
    disk: int
    ephemeral: int
    swap: int
    rxtx_factor: float
    is_public: bool
    description: str | None
    extra_specs: dict[str, str]
    origin: str | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class KeypairRecord:
    id: int
    user_id: str
    name: str
    type: str
    public_key: str
    fingerprint: str
    origin: str | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ServerRecord:
    id: str
    name: str
    project_id: str
    user_id: str
    image_id: str | None
    flavor_id: str
    flavor: dict[str, Any]
    vcpus: int
    ram: int
    disk: int
    host: str | None
    availability_zone: str | None
    vm_state: str
    task_state: str | None
    power_state: int
    key_name: str | None
    key_data: str | None
    metadata: dict[str, str]
    user_data: str | None
    description: str | None
    locked: bool
    locked_reason: str | None
    tags: list[str]
    security_groups: list[str]
    requested_networks: Any
    config_drive: str
    fault: dict[str, Any] | None
    reservation_id: str
    launch_index: int
    hostname: str
    launched_at: dt.datetime | None
    terminated_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    deleted: bool
    # Its volumes, in the order attached (``VolumeMapping.to_json`` each).
    volumes: list[dict[str, Any]] = field(default_factory=list)
    root_image_id: str | None = None
    migration: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class InstanceActionRecord:
    id: int
    server_id: str
    action: str
    request_id: str
    user_id: str
    project_id: str
    message: str | None
    start_time: dt.datetime
    updated_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class HostUsage:
    """What the live servers placed on one host take from it."""

    host: str
    vcpus: int = 0
    ram_mb: int = 0
    disk_gb: int = 0
    servers: int = 0


def to_record(cls: Any, row: Row[Any]) -> Any:
    """The record of class ``cls`` from ``row`` (the columns it names)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in row._mapping.items() if k in names})


def locked(kind: str, name: str, origin: str) -> Locked:
    """The refusal to change a row a sync source delivered (only the source may)."""
    return Locked(
        f"{kind} {name} was synchronised from site {origin} and can only be changed there.",
        source=origin,
    )
