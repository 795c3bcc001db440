"""Networks: MTU 68 to 9000; ``shared`` and ``router:external`` are an admin's to set."""

from __future__ import annotations

from typing import Any

from edgefed.api.resource import Call, ProjectOwned
from edgefed.services.network.neutron import (
    STRING,
    NeutronResource,
    bad_input,
    fixed_on_update,
    flag,
    neutron_body,
    owner_for,
    require_admin_flags,
    standard,
    text,
    texts,
)
from edgefed.services.network.quotas import limit_of
from edgefed.store.network import NetworkRecord, Networks, NewNetwork

# Network attributes only an admin may set (Neutron's create/update_network:<attr> rules).
ADMIN_FLAGS = ("shared", "router:external")
# What an update may not name (Neutron's allow_put=False attributes).
READ_ONLY = ("id", "project_id", "tenant_id", "status", "subnets")
# Boolean attributes an update may set: wire name -> field, default.
FLAGS = (
    ("admin_state_up", "admin_state_up", True),
    ("shared", "shared", False),
    ("router:external", "external", False),
)


class Network(NeutronResource[NetworkRecord, Networks]):
    key = "network"
    collection_key = "networks"
    path = "/v2.0/networks"
    store_class = Networks
    attributes = (
        "admin_state_up",
        "status",
        "shared",
        ("router:external", "external"),
        "is_default",
        "mtu",
    )
    access = ProjectOwned[NetworkRecord](project=lambda n: n.project_id, shared=lambda n: n.shared)
    body_schema = neutron_body(
        {
            "admin_state_up": {"type": "boolean"},
            "shared": {"type": "boolean"},
            "router:external": {"type": "boolean"},
            "mtu": {"type": "integer", "minimum": 68, "maximum": 9000},
            "project_id": STRING,
        }
    )

    def view(self, network: NetworkRecord, call: Call) -> dict[str, Any]:
        return {
            **self.copy(network),
            "subnets": list(network.subnet_ids),
            "availability_zones": ["nova"],
            "availability_zone_hints": [],
            "ipv4_address_scope": None,
            "ipv6_address_scope": None,
            "port_security_enabled": True,
            "l2_adjacency": True,
            **standard(network),
        }

    async def create(self, call: Call, repo: Networks) -> NetworkRecord:
        data = await call.body()
        project_id = owner_for(call, data)
        shared = flag(data, "shared", False)
        external = flag(data, "router:external", False)
        require_admin_flags(call, data, ADMIN_FLAGS, verb="create")
        mtu = _mtu(data.get("mtu", 1500))
        new = NewNetwork(
            name=text(data, "name"),
            project_id=project_id,
            description=text(data, "description"),
            admin_state_up=flag(data, "admin_state_up", True),
            shared=shared,
            external=external,
            mtu=mtu,
        )
        return await repo.add(new=new, limit=await limit_of(call.ctx.store, project_id, "network"))

    async def changes(self, call: Call, repo: Networks, network: NetworkRecord) -> dict[str, Any]:
        data = await call.body()
        require_admin_flags(call, data, ADMIN_FLAGS, verb="update")
        fixed_on_update(data, read_only=READ_ONLY)
        changes: dict[str, Any] = texts(data, ("name", "description"))
        if "mtu" in data:
            changes["mtu"] = _mtu(data["mtu"])
        for name, field, default in FLAGS:
            if name in data:
                changes[field] = flag(data, name, default)
        return changes


def _mtu(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 68 <= value <= 9000:
        raise bad_input(f"'{value}' is not a valid MTU (68-9000) (field 'mtu')")
    return value


NETWORK = Network()
