"""An ``InstanceSpec`` as JSON, for the command that carries it from a site to its agent.

Field by field, both ways, so the agent rebuilds the very value the compute service
made; a document that lacks a required field or has one of the wrong type is refused
(``DriverError``) before the agent touches anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgefed.drivers.base import DriverError, ImageData, InstanceSpec, NicSpec, VolumeDevice


def image_to_json(image: ImageData | None) -> dict[str, Any] | None:
    if image is None:
        return None
    return {
        "id": image.id,
        "disk_format": image.disk_format,
        "container_format": image.container_format,
        "checksum": image.checksum,
        "size": image.size,
        "path": str(image.path) if image.path is not None else None,
    }


def image_from_json(raw: Any) -> ImageData | None:
    if raw is None:
        return None
    doc = _mapping(raw, "image")
    path = doc.get("path")
    return ImageData(
        id=str(doc["id"]),
        disk_format=_opt_str(doc.get("disk_format")),
        container_format=_opt_str(doc.get("container_format")),
        checksum=_opt_str(doc.get("checksum")),
        size=int(doc["size"]) if doc.get("size") is not None else None,
        path=Path(path) if path else None,
    )


def nic_to_json(nic: NicSpec) -> dict[str, Any]:
    return {
        "port_id": nic.port_id,
        "network_id": nic.network_id,
        "mac": nic.mac,
        "fixed_ips": list(nic.fixed_ips),
        "cidr": nic.cidr,
        "gateway": nic.gateway,
        "dns": list(nic.dns),
        "mtu": nic.mtu,
    }


def nic_from_json(raw: Any) -> NicSpec:
    doc = _mapping(raw, "nic")
    return NicSpec(
        port_id=str(doc["port_id"]),
        network_id=str(doc["network_id"]),
        mac=str(doc["mac"]),
        fixed_ips=tuple(str(ip) for ip in doc.get("fixed_ips") or ()),
        cidr=_opt_str(doc.get("cidr")),
        gateway=_opt_str(doc.get("gateway")),
        dns=tuple(str(d) for d in doc.get("dns") or ()),
        mtu=int(doc.get("mtu") or 1500),
    )


def volume_to_json(volume: VolumeDevice) -> dict[str, Any]:
    return {
        "volume_id": volume.volume_id,
        "path": str(volume.path),
        "disk_format": volume.disk_format,
        "read_only": volume.read_only,
        "nbd": dict(volume.nbd) if volume.nbd is not None else None,
    }


def volume_from_json(raw: Any) -> VolumeDevice:
    doc = _mapping(raw, "volume")
    try:
        return VolumeDevice(
            volume_id=str(doc["volume_id"]),
            path=Path(str(doc["path"])),
            disk_format=str(doc.get("disk_format") or "raw"),
            read_only=doc.get("read_only") is True,
            nbd=dict(_mapping(doc["nbd"], "nbd")) if doc.get("nbd") is not None else None,
        )
    except KeyError as exc:
        raise DriverError(f"the volume document lacks {exc}") from exc


def instance_to_json(spec: InstanceSpec) -> dict[str, Any]:
    return {
        "id": spec.id,
        "name": spec.name,
        "host": spec.host,
        "vcpus": spec.vcpus,
        "ram_mb": spec.ram_mb,
        "disk_gb": spec.disk_gb,
        "image_id": spec.image_id,
        "image_path": str(spec.image_path) if spec.image_path is not None else None,
        "user_data": spec.user_data,
        "root_gb": spec.root_gb,
        "ephemeral_gb": spec.ephemeral_gb,
        "swap_mb": spec.swap_mb,
        "image": image_to_json(spec.image),
        "kernel": image_to_json(spec.kernel),
        "ramdisk": image_to_json(spec.ramdisk),
        "kernel_cmdline": spec.kernel_cmdline,
        "nics": [nic_to_json(n) for n in spec.nics],
        "public_keys": dict(spec.public_keys),
        "metadata": dict(spec.metadata),
        "hostname": spec.hostname,
        "project_id": spec.project_id,
        "availability_zone": spec.availability_zone,
        "launch_index": spec.launch_index,
        "root_volume": volume_to_json(spec.root_volume) if spec.root_volume else None,
        "volumes": [volume_to_json(v) for v in spec.volumes],
        "power_on": spec.power_on,
    }


def instance_from_json(raw: Any) -> InstanceSpec:
    doc = _mapping(raw, "instance")
    try:
        image_path = doc.get("image_path")
        return InstanceSpec(
            id=str(doc["id"]),
            name=str(doc["name"]),
            host=str(doc["host"]),
            vcpus=int(doc["vcpus"]),
            ram_mb=int(doc["ram_mb"]),
            disk_gb=int(doc["disk_gb"]),
            image_id=_opt_str(doc.get("image_id")),
            image_path=Path(image_path) if image_path else None,
            user_data=_opt_str(doc.get("user_data")),
            root_gb=int(doc.get("root_gb") or 0),
            ephemeral_gb=int(doc.get("ephemeral_gb") or 0),
            swap_mb=int(doc.get("swap_mb") or 0),
            image=image_from_json(doc.get("image")),
            kernel=image_from_json(doc.get("kernel")),
            ramdisk=image_from_json(doc.get("ramdisk")),
            kernel_cmdline=_opt_str(doc.get("kernel_cmdline")),
            nics=tuple(nic_from_json(n) for n in doc.get("nics") or ()),
            public_keys=_str_map(doc.get("public_keys")),
            metadata=_str_map(doc.get("metadata")),
            hostname=_opt_str(doc.get("hostname")),
            project_id=str(doc.get("project_id") or ""),
            availability_zone=str(doc.get("availability_zone") or "nova"),
            launch_index=int(doc.get("launch_index") or 0),
            root_volume=volume_from_json(doc["root_volume"]) if doc.get("root_volume") else None,
            volumes=tuple(volume_from_json(v) for v in doc.get("volumes") or ()),
            power_on=bool(doc.get("power_on", True)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DriverError(f"the instance document is not usable: {exc!r}") from exc


def _mapping(raw: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise DriverError(f"the {what} document is not an object")
    return raw


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _str_map(value: Any) -> dict[str, str]:
    if not value:
        return {}
    return {str(k): str(v) for k, v in _mapping(value, "map").items()}
