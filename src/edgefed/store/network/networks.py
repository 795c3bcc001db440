"""Networks and subnets as records: a network knows its subnets; neither goes while in
use; a project makes them within its quota."""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import Table, and_, bindparam, delete, func, insert, select

from edgefed.core.errors import Conflict
from edgefed.store.engine import AsyncConnection
from edgefed.store.network.groups import count_of, over_quota
from edgefed.store.network.locks import DEFAULTS_LOCK, QUOTA_LOCK, serialise
from edgefed.store.network.ports import default_pools, delete_ports
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
from edgefed.store.records import RecordMapper, RecordRepository, Related, column_values

DEFAULT_NETWORK_NAME = "default"
DEFAULT_SUBNET_CIDR = "10.0.0.0/24"


async def add_within(
    repo: RecordRepository[Any, Any],
    table: Table,
    resource: str,
    values: dict[str, Any],
    limit: int,
) -> str:
    """Insert ``values`` (stamped) into ``table``; 409 ``OverQuota`` naming ``resource``
    when the project has ``limit`` rows already (-1: no limit). Counted and inserted in
    one write transaction, serialised on PostgreSQL: racing creates do not both fit."""
    values = repo.stamped(values)
    try:
        async with repo.store.write() as conn:
            await serialise(repo.store, conn, QUOTA_LOCK)
            if 0 <= limit <= await count_of(conn, table, values["project_id"]):
                raise over_quota(resource)
            await conn.execute(insert(table).values(**values))
    finally:
        if repo.on_write is not None:
            repo.on_write()
    return str(values["id"])


_SUBNETS_OF = (
    select(subnets.c.id, subnets.c.network_id)
    .where(subnets.c.network_id.in_(bindparam("ids", expanding=True)))
    .order_by(subnets.c.created_at, subnets.c.id)
)


class Networks(RecordRepository[NetworkRecord, NewNetwork]):
    table = networks
    mapper = RecordMapper(NetworkRecord)
    related = (Related("subnet_ids", _SUBNETS_OF, key="network_id", item=lambda row: row.id),)

    async def add(self, *, new: NewNetwork, limit: int) -> NetworkRecord:
        """The new network; 409 ``OverQuota`` when its project has ``limit`` (-1: none)."""
        made = await self.get(
            id=await add_within(self, networks, "network", column_values(new), limit)
        )
        assert made is not None
        return made

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
            unused = await conn.execute(select(ports.c.id).where(ports.c.network_id == id))
            await delete_ports(conn, [row.id for row in unused])
            await conn.execute(delete(subnets).where(subnets.c.network_id == id))
            result = await conn.execute(delete(networks).where(networks.c.id == id))
        return bool(result.rowcount)

    async def project_default(self, project_id: str) -> NetworkRecord | None:
        """The network a server of ``project_id`` lands on when it asks for "auto": its
        default network, else its oldest, that has a subnet."""
        async with self.store.read() as conn:
            found = await _default_of(conn, project_id)
        return await self.get(id=found) if found else None

    async def ensure_default(self, project_id: str) -> NetworkRecord:
        """The project's network for "auto" allocation, created (with a subnet) if missing,
        in one write transaction (serialised on PostgreSQL): racing boots make one."""
        found = await self.project_default(project_id)
        if found is not None:
            return found
        async with self.store.write() as conn:
            await serialise(self.store, conn, DEFAULTS_LOCK)
            network_id = await _default_of(conn, project_id)
            if network_id is None:
                network = self.stamped(
                    column_values(
                        NewNetwork(
                            name=DEFAULT_NETWORK_NAME, project_id=project_id, is_default=True
                        )
                    )
                )
                gateway = str(ipaddress.ip_network(DEFAULT_SUBNET_CIDR).network_address + 1)
                subnet = NewSubnet(
                    network_id=network["id"],
                    project_id=project_id,
                    name=f"{DEFAULT_NETWORK_NAME}-subnet",
                    cidr=DEFAULT_SUBNET_CIDR,
                    ip_version=4,
                    gateway_ip=gateway,
                    allocation_pools=default_pools(DEFAULT_SUBNET_CIDR, gateway),
                )
                await conn.execute(insert(networks).values(**network))
                subnet_values = Subnets(self.store, now=self.now).stamped(column_values(subnet))
                await conn.execute(insert(subnets).values(**subnet_values))
                network_id = network["id"]
        made = await self.get(id=network_id)
        assert made is not None
        return made


async def _default_of(conn: AsyncConnection, project_id: str) -> str | None:
    """The id of the project's "auto" network: its default, else its oldest, with a subnet."""
    has_subnet = select(subnets.c.id).where(subnets.c.network_id == networks.c.id).exists()
    row = (
        await conn.execute(
            select(networks.c.id)
            .where(networks.c.project_id == project_id, has_subnet)
            .order_by(networks.c.is_default.desc(), networks.c.created_at, networks.c.id)
            .limit(1)
        )
    ).first()
    return None if row is None else str(row.id)


class Subnets(RecordRepository[SubnetRecord, NewSubnet]):
    table = subnets
    mapper = RecordMapper(SubnetRecord)

    async def add(self, *, new: NewSubnet, limit: int) -> SubnetRecord:
        """The new subnet; 409 ``OverQuota`` when its project has ``limit`` (-1: none)."""
        made = await self.get(
            id=await add_within(self, subnets, "subnet", column_values(new), limit)
        )
        assert made is not None
        return made

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
