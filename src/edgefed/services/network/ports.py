"""Ports: fixed IPs allocated from the network's subnets, never the same address twice;
security groups of the port's project (its default group when none is named)."""

from __future__ import annotations

import re
from typing import Any

from edgefed.api.resource import Call, ProjectOwned
from edgefed.services.network.groups import SECURITY_GROUP
from edgefed.services.network.networks import NETWORK
from edgefed.services.network.neutron import (
    STRING,
    NeutronResource,
    bad_input,
    fixed_on_update,
    flag,
    listed,
    neutron_body,
    owner_for,
    required,
    standard,
    text,
    texts,
)
from edgefed.services.network.quotas import limit_of
from edgefed.services.network.subnets import SUBNET
from edgefed.store.network import NewPort, PortRecord, Ports, SecurityGroups, Subnets

MAC_RE = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
# What an update may not name: Neutron's read-only attributes, and those Neutron
# changes but this cloud does not.
READ_ONLY = ("id", "network_id", "project_id", "tenant_id", "status")
UNSUPPORTED_UPDATES = ("fixed_ips", "mac_address")
# Ports Neutron leaves unfiltered when no group is named (DHCP, routers).
TRUSTED_OWNER = "network:"


class Port(NeutronResource[PortRecord, Ports]):
    key = "port"
    collection_key = "ports"
    path = "/v2.0/ports"
    store_class = Ports
    attributes = (
        "network_id",
        "mac_address",
        "admin_state_up",
        "status",
        "device_id",
        "device_owner",
    )
    access = ProjectOwned[PortRecord](project=lambda p: p.project_id)
    filters = listed("network_id", "device_id")
    body_schema = neutron_body(
        {
            "network_id": {"type": "string"},
            "fixed_ips": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "subnet_id": {"type": "string"},
                        "ip_address": {"type": "string"},
                    },
                },
            },
            "mac_address": {"type": "string"},
            "admin_state_up": {"type": "boolean"},
            "device_id": STRING,
            "device_owner": STRING,
            "project_id": STRING,
            "security_groups": {"type": "array", "items": {"type": "string"}},
        },
        required=("network_id",),
    )

    def view(self, port: PortRecord, call: Call) -> dict[str, Any]:
        return {
            **self.copy(port),
            "fixed_ips": [
                {"subnet_id": ip.subnet_id, "ip_address": ip.ip_address} for ip in port.fixed_ips
            ],
            "security_groups": list(port.security_groups),
            "allowed_address_pairs": [],
            "extra_dhcp_opts": [],
            "binding:vnic_type": "normal",
            "port_security_enabled": True,
            **standard(port),
        }

    async def create(self, call: Call, repo: Ports) -> PortRecord:
        data = await call.body()
        network = await NETWORK.find(call, str(required(data, "network_id")))
        project_id = owner_for(call, data)
        requested = await _requested_ips(call, data.get("fixed_ips"))
        groups = await _groups(call, data, project_id)
        if groups is None and text(data, "device_owner").startswith(TRUSTED_OWNER):
            groups = []  # Neutron filters no DHCP or router port
        mac = data.get("mac_address")
        if mac is not None and (not isinstance(mac, str) or not MAC_RE.match(mac.lower())):
            raise bad_input(f"'{mac}' is not a valid MAC address (field 'mac_address')")
        new = NewPort(
            network_id=network.id,
            project_id=project_id,
            requested_ips=requested,
            name=text(data, "name"),
            description=text(data, "description"),
            device_id=text(data, "device_id"),
            device_owner=text(data, "device_owner"),
            mac_address=mac.lower() if isinstance(mac, str) else None,
            admin_state_up=flag(data, "admin_state_up", True),
            security_groups=groups,
        )
        try:
            return await repo.create(
                new=new, limit=await limit_of(call.ctx.store, project_id, "port")
            )
        except ValueError as exc:
            raise bad_input(f"invalid fixed IP: {exc}") from exc

    async def changes(self, call: Call, repo: Ports, port: PortRecord) -> dict[str, Any]:
        data = await call.body()
        fixed_on_update(data, read_only=READ_ONLY, unsupported=UNSUPPORTED_UPDATES)
        changes: dict[str, Any] = texts(data, ("name", "description", "device_id", "device_owner"))
        if "admin_state_up" in data:
            changes["admin_state_up"] = flag(data, "admin_state_up", True)
        groups = await _groups(call, data, port.project_id)
        if groups is not None:
            changes["security_groups"] = groups
        return changes


async def _groups(call: Call, data: dict[str, Any], project_id: str) -> list[str] | None:
    """The ``security_groups`` asked for: ids of groups of the port's project (404 naming
    those that are not); None when the body does not say."""
    if data.get("port_security_enabled") is False:
        raise bad_input("disabling port security is not supported by this cloud")
    asked = data.get("security_groups")
    if asked is None:
        return None
    if not isinstance(asked, list) or not all(isinstance(g, str) for g in asked):
        raise bad_input(f"'{asked}' is not a list of security group ids (field 'security_groups')")
    groups = SecurityGroups(call.ctx.store, ensure_for=project_id)
    found = {g.id for g in await groups.list(filters={"project_id": project_id, "id": asked})}
    missing = [g for g in dict.fromkeys(asked) if g not in found]
    if missing:
        raise SECURITY_GROUP.not_found(", ".join(missing))
    return list(dict.fromkeys(asked))


async def _requested_ips(call: Call, fixed: Any) -> list[dict[str, str]] | None:
    """``fixed_ips`` as asked: each a subnet (that exists) and/or an address."""
    if fixed is None:
        return None
    if not isinstance(fixed, list) or not all(isinstance(f, dict) for f in fixed):
        raise bad_input("fixed_ips must be a list of {subnet_id, ip_address}")
    subnets = Subnets(call.ctx.store)
    requested = []
    for item in fixed:
        entry = {k: str(item[k]) for k in ("subnet_id", "ip_address") if item.get(k)}
        if not entry:
            raise bad_input(f"fixed IP {item!r} needs a subnet_id or an ip_address")
        if "subnet_id" in entry and await subnets.get(id=entry["subnet_id"]) is None:
            raise SUBNET.not_found(entry["subnet_id"])
        requested.append(entry)
    return requested


PORT = Port()
