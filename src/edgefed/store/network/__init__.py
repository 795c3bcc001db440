"""The network service's store: networks, subnets, ports with IPAM, security groups and
their rules, quotas.

The network API reads and writes through the repositories of each kind (``Networks``,
``Subnets``, ``Ports``, ``SecurityGroups``, ``SecurityGroupRules``, ``NetworkQuotas``).
The compute service, which gives each server its ports and never imports the network
service, goes through ``NetworkRepository``: the calls it makes, over the same
repositories, including ``port_security``: the rules that apply to some ports, as
plain records, for the host that enforces them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from edgefed.core.errors import NotFound
from edgefed.store.engine import Store
from edgefed.store.network.groups import SecurityGroups
from edgefed.store.network.networks import (
    DEFAULT_NETWORK_NAME,
    DEFAULT_SUBNET_CIDR,
    Networks,
    Subnets,
)
from edgefed.store.network.port_security import PortSecurity, SecurityView, port_security
from edgefed.store.network.ports import Ports, default_pools, first_free
from edgefed.store.network.protocols import IP_PROTOCOLS, protocol_number
from edgefed.store.network.quotas import NetworkQuotas
from edgefed.store.network.rules import SecurityGroupRules
from edgefed.store.network.tables import (
    DEFAULT_GROUP_NAME,
    FixedIp,
    NetworkRecord,
    NewNetwork,
    NewPort,
    NewSecurityGroup,
    NewSecurityGroupRule,
    NewSubnet,
    PortRecord,
    SecurityGroupRecord,
    SecurityGroupRuleRecord,
    SubnetRecord,
)

__all__ = [
    "DEFAULT_GROUP_NAME",
    "DEFAULT_NETWORK_NAME",
    "DEFAULT_SUBNET_CIDR",
    "IP_PROTOCOLS",
    "FixedIp",
    "NetworkQuotas",
    "NetworkRecord",
    "NetworkRepository",
    "Networks",
    "NewNetwork",
    "NewPort",
    "NewSecurityGroup",
    "NewSecurityGroupRule",
    "NewSubnet",
    "PortRecord",
    "PortSecurity",
    "Ports",
    "SecurityGroupRecord",
    "SecurityGroupRuleRecord",
    "SecurityGroupRules",
    "SecurityGroups",
    "SecurityView",
    "SubnetRecord",
    "Subnets",
    "default_pools",
    "first_free",
    "port_security",
    "protocol_number",
]


class NetworkRepository:
    """What the compute service does with networks: find them, plug servers in, unplug."""

    def __init__(self, store: Store):
        self.store = store
        self.networks = Networks(store)
        self.ports = Ports(store)
        self.security_groups = SecurityGroups(store)

    async def get_network(self, network_id: str) -> NetworkRecord | None:
        return await self.networks.get(id=network_id)

    async def list_networks(self) -> list[NetworkRecord]:
        return list(await self.networks.list())

    async def ensure_default_network(self, project_id: str) -> NetworkRecord:
        return await self.networks.ensure_default(project_id)

    async def ensure_default_security_group(self, project_id: str) -> SecurityGroupRecord:
        return await self.security_groups.ensure_default(project_id)

    async def find_security_groups(
        self, project_id: str, refs: Sequence[str]
    ) -> list[SecurityGroupRecord]:
        """The project's groups by id or name (a server's ``security_groups``, the
        default group made first); LookupError naming those not found."""
        await self.security_groups.ensure_default(project_id)
        return await self.security_groups.of_project(project_id, refs)

    async def port_security(
        self,
        *,
        port_ids: Sequence[str] | None = None,
        network_ids: Sequence[str] | None = None,
        device_ids: Sequence[str] | None = None,
    ) -> SecurityView:
        """The rules that apply to these ports and the members of the groups they name,
        as plain records (see ``port_security``)."""
        return await port_security(
            self.store, port_ids=port_ids, network_ids=network_ids, device_ids=device_ids
        )

    async def get_port(self, port_id: str) -> PortRecord | None:
        return await self.ports.get(id=port_id)

    async def list_ports(
        self, *, device_id: str | None = None, network_id: str | None = None
    ) -> list[PortRecord]:
        filters = {"device_id": device_id, "network_id": network_id}
        return list(
            await self.ports.list(filters={k: v for k, v in filters.items() if v is not None})
        )

    async def create_port(
        self,
        *,
        network: NetworkRecord,
        project_id: str,
        requested_ips: Sequence[Mapping[str, str]] | None = None,
        **values: Any,
    ) -> PortRecord:
        return await self.ports.create(
            new=NewPort(
                network_id=network.id, project_id=project_id, requested_ips=requested_ips, **values
            )
        )

    async def update_port(self, port_id: str, **values: Any) -> PortRecord:
        found = await self.ports.update(id=port_id, changes=values)
        if found is None:
            raise NotFound(f"Port {port_id} could not be found.")
        return found

    async def delete_ports_of_device(self, device_id: str) -> None:
        await self.ports.delete_of_device(device_id)
