"""Networks and subnets as records: a network knows its subnets; neither goes while in use."""

from __future__ import annotations

import ipaddress

from sqlalchemy import and_, bindparam, delete, func, select

from edgefed.core.errors import Conflict
from edgefed.store.network.ports import default_pools
from edgefed.store.network.tables import (
    NetworkRecord,
    NewNetwork,
    NewSubnet,
    SubnetRecord,
    ip_allocations,
    networks,
    ports,
    subnets,
)
from edgefed.store.records import RecordMapper, RecordRepository, Related

DEFAULT_NETWORK_NAME = "default"
DEFAULT_SUBNET_CIDR = "10.0.0.0/24"

_SUBNETS_OF = (
    select(subnets.c.id, subnets.c.network_id)
    .where(subnets.c.network_id.in_(bindparam("ids", expanding=True)))
    .order_by(subnets.c.created_at, subnets.c.id)
)


class Networks(RecordRepository[NetworkRecord, NewNetwork]):
    table = networks
    mapper = RecordMapper(NetworkRecord)
    related = (Related("subnet_ids", _SUBNETS_OF, key="network_id", item=lambda row: row.id),)

    async def shared_ids(self) -> set[str]:
        async with self.store.read() as conn:
            rows = await conn.execute(select(networks.c.id).where(networks.c.shared.is_(True)))
            return {row.id for row in rows}

    async def delete(self, *, id: str) -> bool:
        """Delete the network with its subnets and unused ports; 409 while a port of it is
        in use (a server's, a router's: any port with an owner)."""
        async with self.store.write() as conn:
            in_use = await conn.execute(
                select(func.count())
                .select_from(ports)
                .where(and_(ports.c.network_id == id, ports.c.device_owner != ""))
            )
            if in_use.scalar_one():
                raise Conflict(
                    f"Unable to complete operation on network {id}. "
                    "There are one or more ports still in use on the network.",
                    kind="NetworkInUse",
                )
            await conn.execute(delete(ip_allocations).where(ip_allocations.c.network_id == id))
            await conn.execute(delete(ports).where(ports.c.network_id == id))
            await conn.execute(delete(subnets).where(subnets.c.network_id == id))
            result = await conn.execute(delete(networks).where(networks.c.id == id))
        return bool(result.rowcount)

    async def project_default(self, project_id: str) -> NetworkRecord | None:
        """The network a server of ``project_id`` lands on when it asks for "auto": its
        default network, else its oldest, that has a subnet."""
        candidates = await self.list(filters={"project_id": project_id})
        with_subnets = [n for n in candidates if n.subnet_ids]
        with_subnets.sort(key=lambda n: not n.is_default)  # stable: oldest first otherwise
        return with_subnets[0] if with_subnets else None

    async def ensure_default(self, project_id: str) -> NetworkRecord:
        """The project's network for "auto" allocation, created (with a subnet) if missing."""
        found = await self.project_default(project_id)
        if found is not None:
            return found
        network = await self.create(
            new=NewNetwork(name=DEFAULT_NETWORK_NAME, project_id=project_id, is_default=True)
        )
        gateway = str(ipaddress.ip_network(DEFAULT_SUBNET_CIDR).network_address + 1)
        await Subnets(self.store).create(
            new=NewSubnet(
                network_id=network.id,
                project_id=project_id,
                name=f"{DEFAULT_NETWORK_NAME}-subnet",
                cidr=DEFAULT_SUBNET_CIDR,
                ip_version=4,
                gateway_ip=gateway,
                allocation_pools=default_pools(DEFAULT_SUBNET_CIDR, gateway),
            )
        )
        found = await self.get(id=network.id)
        assert found is not None
        return found


class Subnets(RecordRepository[SubnetRecord, NewSubnet]):
    table = subnets
    mapper = RecordMapper(SubnetRecord)

    async def delete(self, *, id: str) -> bool:
        """Delete the subnet; 409 while a port holds one of its addresses."""
        async with self.store.write() as conn:
            used = await conn.execute(
                select(func.count())
                .select_from(ip_allocations)
                .where(ip_allocations.c.subnet_id == id)
            )
            if used.scalar_one():
                raise Conflict(
                    f"Unable to complete operation on subnet {id}: "
                    "One or more ports have an IP allocation from this subnet.",
                    kind="SubnetInUse",
                )
            result = await conn.execute(delete(subnets).where(subnets.c.id == id))
        return bool(result.rowcount)
