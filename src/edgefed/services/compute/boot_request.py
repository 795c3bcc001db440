"""What a server-create body asks for, checked as Nova checks it, before anything is read.

``parse_boot_request`` turns the ``server`` section of ``POST /servers`` into a
``BootRequest`` or raises the 400 Nova gives for the same mistake (the openstack CLI
and Tempest-style clients match on those messages). It reads no state: whether the
image, flavor, key, networks and zone exist is boot_checks.py's business.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from edgefed.core.errors import BadRequest, ValidationFailed
from edgefed.core.ids import is_uuid
from edgefed.services.compute.block_devices import VolumeRequest, parse_block_devices
from edgefed.services.compute.body import invalid, opt_int, opt_str, req_str, string_map
from edgefed.services.compute.microversion import APIVersion

MAX_USER_DATA = 65535

# "auto" or "none" (2.37+), or a list of {"uuid"|"port", "fixed_ip"?}.
Networks = str | list[dict[str, str]]


@dataclass(frozen=True)
class BootRequest:
    name: str
    image_ref: str | None  # None: boots from a volume
    flavor_id: str
    networks: Networks
    metadata: dict[str, str] = field(default_factory=dict)
    user_data: str | None = None
    description: str | None = None
    min_count: int = 1
    max_count: int = 1
    zone: str | None = None
    tags: list[str] = field(default_factory=list)
    security_groups: list[str] = field(default_factory=list)
    key_name: str | None = None
    config_drive: bool = False
    return_reservation_id: bool = False
    volumes: list[VolumeRequest] = field(default_factory=list)


def parse_boot_request(data: dict[str, Any], version: APIVersion) -> BootRequest:
    """The ``server`` section of a create body, checked; a 400 (or 422-style
    ``ValidationFailed``) naming the first mistake."""
    name = req_str(data, "name")
    image_ref, volumes = parse_block_devices(data)
    flavor_ref = data.get("flavorRef")
    if not isinstance(flavor_ref, str | int) or isinstance(flavor_ref, bool) or flavor_ref == "":
        raise ValidationFailed(
            "Invalid input: 'flavorRef' is a required property", field="flavorRef"
        )
    flavor_id = str(flavor_ref).rstrip("/").rsplit("/", 1)[-1]
    networks = parse_networks(data, version)
    metadata = string_map(data, "metadata")
    user_data = decode_user_data(data)
    description = opt_str(data, "description", max_len=255) if version.at_least("2.19") else None
    min_count = opt_int(data, "min_count", minimum=1) or 1
    max_count = opt_int(data, "max_count", minimum=1) or min_count
    if min_count > max_count:
        raise BadRequest("min_count must be <= max_count")
    if max_count > 1 and any(v.volume_id for v in volumes):
        raise BadRequest("Cannot attach one or more volumes to multiple instances")
    zone = opt_str(data, "availability_zone")
    tags = data.get("tags", []) if version.at_least("2.52") else []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise invalid("tags", f"{tags!r} must be an array of strings")
    groups_raw = data.get("security_groups") or [{"name": "default"}]
    if not isinstance(groups_raw, list):
        raise invalid("security_groups", f"{groups_raw!r} is not of type 'array'")
    groups = [str(g.get("name")) for g in groups_raw if isinstance(g, dict) and g.get("name")]
    return BootRequest(
        name=name,
        image_ref=image_ref,
        volumes=volumes,
        flavor_id=flavor_id,
        networks=networks,
        metadata=metadata,
        user_data=user_data,
        description=description,
        min_count=min_count,
        max_count=max_count,
        zone=zone,
        tags=list(dict.fromkeys(tags)),
        security_groups=groups or ["default"],
        key_name=opt_str(data, "key_name"),
        config_drive=data.get("config_drive") in (True, "true", "True"),
        return_reservation_id=data.get("return_reservation_id") is True,
    )


def parse_networks(data: dict[str, Any], version: APIVersion) -> Networks:
    if "networks" not in data:
        if version.at_least("2.37"):
            raise ValidationFailed(
                "Invalid input: 'networks' is a required property", field="networks"
            )
        return "auto"
    raw = data["networks"]
    if isinstance(raw, str):
        if raw in ("auto", "none") and version.at_least("2.37"):
            return raw
        raise invalid("networks", f"{raw!r} is not one of ['auto', 'none'] and not an array")
    if not isinstance(raw, list):
        raise invalid("networks", f"{raw!r} is not of type 'array'")
    parsed: list[dict[str, str]] = []
    for item in raw:
        if not isinstance(item, dict):
            raise invalid("networks", f"{item!r} is not of type 'object'")
        entry: dict[str, str] = {}
        if item.get("port"):
            if not is_uuid(str(item["port"])):
                raise BadRequest(f"Bad networks format: port uuid {item['port']} is invalid")
            entry["port"] = str(item["port"])
        elif item.get("uuid"):
            if not is_uuid(str(item["uuid"])):
                raise BadRequest(
                    f"Bad networks format: network uuid is not in proper format ({item['uuid']})"
                )
            entry["uuid"] = str(item["uuid"])
        else:
            raise BadRequest("Bad networks format: each network needs a 'uuid' or a 'port'")
        if item.get("fixed_ip"):
            entry["fixed_ip"] = str(item["fixed_ip"])
        parsed.append(entry)
    return parsed


def decode_user_data(data: dict[str, Any]) -> str | None:
    raw = data.get("user_data")
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise invalid("user_data", f"{raw!r} is not of type 'string'")
    if len(raw) > MAX_USER_DATA:
        raise BadRequest(
            f"User data too large. User data must be no larger than {MAX_USER_DATA} bytes "
            f"once base64 encoded. Your data is {len(raw)} bytes"
        )
    try:
        base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise invalid("user_data", f"{raw[:40]!r}. {raw[:40]!r} is not a 'base64'") from exc
    return raw
