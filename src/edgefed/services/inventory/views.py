"""Request bodies and the JSON shape of a host, an enrollment token and hardware."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edgefed.store.inventory import EnrollmentTokenRecord, HostRecord


class HostCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hostname: str = Field(max_length=255)
    personality: str
    mgmt_ip: str | None = None
    bm_type: str | None = None
    bm_ip: str | None = None
    bm_username: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    cpu_allocation_ratio: float = 16.0
    ram_allocation_ratio: float = 1.5
    disk_allocation_ratio: float = 1.0


class HostUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hostname: str | None = Field(default=None, max_length=255)
    personality: str | None = None
    mgmt_ip: str | None = None
    bm_type: str | None = None
    bm_ip: str | None = None
    bm_username: str | None = None
    cpu_allocation_ratio: float | None = None
    ram_allocation_ratio: float | None = None
    disk_allocation_ratio: float | None = None


class LabelsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: dict[str, str] = Field(default_factory=dict)
    remove: list[str] = Field(default_factory=list)


class UpgradeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    load: str = Field(min_length=1, max_length=64)


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hostname: str | None = Field(default=None, max_length=255)
    personality: str | None = None
    ttl_seconds: int = Field(default=3600, ge=60, le=7 * 86400)


class Disk(BaseModel):
    name: str = Field(max_length=255)
    size_gb: float = Field(ge=0)


class Nic(BaseModel):
    name: str = Field(max_length=64)
    mac: str | None = Field(default=None, max_length=64)
    mtu: int | None = Field(default=None, ge=0)
    addresses: list[str] = Field(default_factory=list, max_length=64)


class OsRelease(BaseModel):
    id: str = Field(default="", max_length=64)
    version_id: str = Field(default="", max_length=64)
    pretty_name: str = Field(default="", max_length=255)


class Hardware(BaseModel):
    """What a host agent reports."""

    cpus: int = Field(ge=1, le=100000)
    memory_mb: int = Field(ge=1)
    disks: list[Disk] = Field(default_factory=list, max_length=256)
    nics: list[Nic] = Field(default_factory=list, max_length=256)
    os: OsRelease = Field(default_factory=OsRelease)
    kernel: str = Field(default="", max_length=255)
    machine: str = Field(default="", max_length=64)


class EnrollRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enrollment_token: str = Field(min_length=1, max_length=256)
    hostname: str = Field(max_length=255)
    mgmt_ip: str | None = None
    hardware: Hardware


class HeartbeatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hardware: Hardware | None = None


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_iso(value: float | None) -> str | None:
    if value is None:
        return None
    return iso(dt.datetime.fromtimestamp(value, dt.UTC))


def capacity(host: HostRecord) -> dict[str, int]:
    """What the host offers before allocation ratios: from its agent's last report."""
    hw = host.hardware
    disks = hw.get("disks") or []
    return {
        "vcpus": int(hw.get("cpus") or 0),
        "memory_mb": int(hw.get("memory_mb") or 0),
        "disk_gb": int(sum(float(d.get("size_gb") or 0) for d in disks)),
    }


def token_view(token: EnrollmentTokenRecord, *, now: float) -> dict[str, Any]:
    if token.used_at is not None:
        state = "used"
    elif token.expires_at <= now:
        state = "expired"
    else:
        state = "valid"
    return {
        "id": token.id,
        "hostname": token.hostname,
        "personality": token.personality,
        "expires_at": epoch_iso(token.expires_at),
        "state": state,
        "used_by_host_id": token.used_by_host_id,
        "created_at": iso(token.created_at),
    }
