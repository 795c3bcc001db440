"""Subnets: created on a network the caller may change, checked by ``ipam``; seen by
whoever sees their network (a shared network's subnets by everyone)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edgefed.api.resource import Call, ProjectOwned
from edgefed.services.network import ipam
from edgefed.services.network.networks import NETWORK
from edgefed.services.network.neutron import (
    NeutronResource,
    bad_input,
    fixed_on_update,
    flag,
    listed,
    neutron_body,
    required,
    standard,
    text,
    texts,
)
from edgefed.services.network.quotas import limit_of
from edgefed.store.network import Networks, NewSubnet, SubnetRecord, Subnets

# What an update may not name: Neutron's read-only attributes, and those Neutron
# changes but this cloud does not (the addresses handed out follow the pools).
READ_ONLY = ("id", "network_id", "cidr", "ip_version", "project_id", "tenant_id", "subnetpool_id")
UNSUPPORTED_UPDATES = ("gateway_ip", "allocation_pools", "host_routes")


class SubnetAccess(ProjectOwned[SubnetRecord]):
    """A subnet is seen by its project, and by everyone when its network is shared."""

    def __init__(self) -> None:
        super().__init__(project=lambda s: s.project_id)

    async def readable(self, call: Call, record: SubnetRecord) -> bool:
        if self.may_read(call, record):
            return True
        network = await Networks(call.ctx.store).get(id=record.network_id)
        return network is not None and network.shared

    async def visible(self, call: Call, records: Sequence[SubnetRecord]) -> list[SubnetRecord]:
        shared = await Networks(call.ctx.store).shared_ids()
        return [s for s in records if s.network_id in shared or self.may_read(call, s)]


class Subnet(NeutronResource[SubnetRecord, Subnets]):
    key = "subnet"
    collection_key = "subnets"
    path = "/v2.0/subnets"
    store_class = Subnets
    attributes = (
        "network_id",
        "cidr",
        "ip_version",
        "gateway_ip",
        "allocation_pools",
        "dns_nameservers",
        "host_routes",
        "enable_dhcp",
    )
    access: ProjectOwned[SubnetRecord] = SubnetAccess()
    filters = listed("network_id")
    body_schema = neutron_body(
        {
            "network_id": {"type": "string"},
            "cidr": {"type": "string"},
            "ip_version": {"type": "integer", "enum": [4, 6]},
            "gateway_ip": {"type": ["string", "null"]},
            "allocation_pools": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"start": {"type": "string"}, "end": {"type": "string"}},
                },
            },
            "dns_nameservers": {"type": "array", "items": {"type": "string"}},
            "enable_dhcp": {"type": "boolean"},
        },
        required=("network_id", "cidr"),
    )

    def view(self, subnet: SubnetRecord, call: Call) -> dict[str, Any]:
        return {
            **self.copy(subnet),
            "ipv6_ra_mode": None,
            "ipv6_address_mode": None,
            "subnetpool_id": None,
            "segment_id": None,
            "service_types": [],
            **standard(subnet),
        }

    async def create(self, call: Call, repo: Subnets) -> SubnetRecord:
        data = await call.body()
        network = await NETWORK.find(call, str(required(data, "network_id")))
        self.access.check_owner(call, network.project_id, "create", id=network.id)
        taken = [s.cidr for s in await repo.list(filters={"network_id": network.id})]
        plan = ipam.plan_subnet(data, network_id=network.id, taken=taken)
        new = NewSubnet(
            network_id=network.id,
            project_id=network.project_id,
            name=text(data, "name"),
            description=text(data, "description"),
            cidr=str(plan.net),
            ip_version=plan.net.version,
            gateway_ip=plan.gateway_ip,
            allocation_pools=ipam.pools(data, plan.net, plan.gateway_ip),
            dns_nameservers=plan.dns_nameservers,
            host_routes=data.get("host_routes") or [],
            enable_dhcp=flag(data, "enable_dhcp", True),
        )
        limit = await limit_of(call.ctx.store, network.project_id, "subnet")
        return await repo.add(new=new, limit=limit)

    async def changes(self, call: Call, repo: Subnets, subnet: SubnetRecord) -> dict[str, Any]:
        data = await call.body()
        fixed_on_update(data, read_only=READ_ONLY, unsupported=UNSUPPORTED_UPDATES)
        changes: dict[str, Any] = texts(data, ("name", "description"))
        if "enable_dhcp" in data:
            changes["enable_dhcp"] = flag(data, "enable_dhcp", True)
        if "dns_nameservers" in data:
            servers = data["dns_nameservers"] or []
            if not isinstance(servers, list):
                raise bad_input("dns_nameservers must be a list")
            changes["dns_nameservers"] = [str(d) for d in servers]
        return changes


SUBNET = Subnet()
