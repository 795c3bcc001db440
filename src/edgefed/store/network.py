"""Tables and repository of the network service: networks, subnets, ports, IPAM.

Both the network API and the compute service (which gives each server a port) go
through ``NetworkRepository``; the services never import each other. IP allocation
happens inside one write transaction and ``(subnet_id, ip_address)`` is the primary key
of the allocations table, so an address is never handed out twice, even if two
requests race (the second one fails the constraint instead of duplicating).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Integer,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from edgefed.core.errors import Conflict, NotFound
from edgefed.core.ids import new_uuid
from edgefed.store.engine import AsyncConnection, Store
from edgefed.store.schema import JsonDoc, UtcDateTime, metadata, utcnow

networks = Table(
    "net_networks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(255), nullable=False, default=""),
    Column("project_id", String(64), nullable=False, index=True),
    Column("description", Text, nullable=False, default=""),
    Column("admin_state_up", Boolean, nullable=False, default=True),
    Column("shared", Boolean, nullable=False, default=False),
    Column("external", Boolean, nullable=False, default=False),
    Column("is_default", Boolean, nullable=False, default=False),
    Column("mtu", Integer, nullable=False, default=1500),
    Column("status", String(16), nullable=False, default="ACTIVE"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

subnets = Table(
    "net_subnets",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("network_id", String(36), nullable=False, index=True),
    Column("project_id", String(64), nullable=False),
    Column("name", String(255), nullable=False, default=""),
    Column("description", Text, nullable=False, default=""),
    Column("cidr", String(64), nullable=False),
    Column("ip_version", Integer, nullable=False),
    Column("gateway_ip", String(64), nullable=True),
    Column("allocation_pools", JsonDoc, nullable=False),
    Column("dns_nameservers", JsonDoc, nullable=False),
    Column("host_routes", JsonDoc, nullable=False),
    Column("enable_dhcp", Boolean, nullable=False, default=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

ports = Table(
    "net_ports",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("network_id", String(36), nullable=False, index=True),
    Column("project_id", String(64), nullable=False),
    Column("name", String(255), nullable=False, default=""),
    Column("description", Text, nullable=False, default=""),
    Column("mac_address", String(32), nullable=False, unique=True),
    Column("device_id", String(255), nullable=False, default="", index=True),
    Column("device_owner", String(255), nullable=False, default=""),
    Column("admin_state_up", Boolean, nullable=False, default=True),
    Column("status", String(16), nullable=False, default="DOWN"),
    Column("security_groups", JsonDoc, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

ip_allocations = Table(
    "net_ip_allocations",
    metadata,
    Column("subnet_id", String(36), primary_key=True),
    Column("ip_address", String(64), primary_key=True),
    Column("port_id", String(36), nullable=False, index=True),
    Column("network_id", String(36), nullable=False),
)

security_groups = Table(
    "net_security_groups",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("project_id", String(64), nullable=False, index=True),
    Column("name", String(255), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("rules", JsonDoc, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

network_quotas = Table(
    "net_quotas",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("resource", String(64), primary_key=True),
    Column("hard_limit", Integer, nullable=False),
)

DEFAULT_NETWORK_NAME = "default"
DEFAULT_SUBNET_CIDR = "10.0.0.0/24"


@dataclass(frozen=True, slots=True)
class NetworkRecord:
    id: str
    name: str
    project_id: str
    description: str
    admin_state_up: bool
    shared: bool
    external: bool
    is_default: bool
    mtu: int
    status: str
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class SubnetRecord:
    id: str
    network_id: str
    project_id: str
    name: str
    description: str
    cidr: str
    ip_version: int
    gateway_ip: str | None
    allocation_pools: list[dict[str, str]]
    dns_nameservers: list[str]
    host_routes: list[dict[str, str]]
    enable_dhcp: bool
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class FixedIp:
    subnet_id: str
    ip_address: str


@dataclass(frozen=True, slots=True)
class PortRecord:
    id: str
    network_id: str
    project_id: str
    name: str
    description: str
    mac_address: str
    device_id: str
    device_owner: str
    admin_state_up: bool
    status: str
    security_groups: list[str]
    created_at: dt.datetime
    updated_at: dt.datetime
    fixed_ips: tuple[FixedIp, ...] = ()


@dataclass(frozen=True, slots=True)
class SecurityGroupRecord:
    id: str
    project_id: str
    name: str
    description: str
    rules: list[dict[str, Any]]
    created_at: dt.datetime
    updated_at: dt.datetime


def _record(cls: Any, row: Row[Any], **extra: Any) -> Any:
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in row._mapping.items() if k in names}, **extra)


def default_pools(cidr: str, gateway_ip: str | None) -> list[dict[str, str]]:
    """Neutron's default: every host address of the CIDR except the gateway."""
    net = ipaddress.ip_network(cidr)
    if net.num_addresses <= 2:
        return []
    first = int(net.network_address) + 1
    last = int(net.broadcast_address) - (1 if net.version == 4 else 0)

    def text(value: int) -> str:
        return str(
            ipaddress.ip_address(value) if net.version == 4 else ipaddress.IPv6Address(value)
        )

    if gateway_ip is not None:
        gw = int(ipaddress.ip_address(gateway_ip))
        if first <= gw <= last:
            pools: list[dict[str, str]] = []
            if gw > first:
                pools.append({"start": text(first), "end": text(gw - 1)})
            if gw < last:
                pools.append({"start": text(gw + 1), "end": text(last)})
            return pools
    return [{"start": text(first), "end": text(last)}]


def random_mac() -> str:
    tail = [random.randint(0, 255) for _ in range(3)]
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in tail)


class NetworkRepository:
    def __init__(self, store: Store):
        self.store = store

    # networks ---------------------------------------------------------------------------
    async def create_network(self, **values: Any) -> NetworkRecord:
        now = utcnow()
        row = {"id": new_uuid(), "created_at": now, "updated_at": now, **values}
        async with self.store.write() as conn:
            await conn.execute(insert(networks).values(**row))
        found = await self.get_network(str(row["id"]))
        assert found is not None
        return found

    async def get_network(self, network_id: str) -> NetworkRecord | None:
        async with self.store.read() as conn:
            row = (await conn.execute(select(networks).where(networks.c.id == network_id))).first()
        return None if row is None else _record(NetworkRecord, row)

    async def list_networks(self) -> list[NetworkRecord]:
        async with self.store.read() as conn:
            rows = await conn.execute(select(networks).order_by(networks.c.created_at))
            return [_record(NetworkRecord, r) for r in rows]

    async def update_network(self, network_id: str, **values: Any) -> NetworkRecord:
        async with self.store.write() as conn:
            await conn.execute(
                update(networks)
                .where(networks.c.id == network_id)
                .values(updated_at=utcnow(), **values)
            )
        found = await self.get_network(network_id)
        if found is None:
            raise NotFound(f"Network {network_id} could not be found.")
        return found

    async def delete_network(self, network_id: str) -> None:
        async with self.store.write() as conn:
            in_use = (
                await conn.execute(
                    select(func.count())
                    .select_from(ports)
                    .where(and_(ports.c.network_id == network_id, ports.c.device_owner != ""))
                )
            ).scalar_one()
            if in_use:
                raise Conflict(
                    f"Unable to complete operation on network {network_id}. "
                    "There are one or more ports still in use on the network.",
                    kind="NetworkInUse",
                )
            await conn.execute(
                delete(ip_allocations).where(ip_allocations.c.network_id == network_id)
            )
            await conn.execute(delete(ports).where(ports.c.network_id == network_id))
            await conn.execute(delete(subnets).where(subnets.c.network_id == network_id))
            await conn.execute(delete(networks).where(networks.c.id == network_id))

    async def project_default_network(self, project_id: str) -> NetworkRecord | None:
        """The network a server of ``project_id`` lands on when it asks for "auto"."""
        async with self.store.read() as conn:
            rows = await conn.execute(
                select(networks)
                .where(networks.c.project_id == project_id)
                .order_by(networks.c.is_default.desc(), networks.c.created_at)
            )
            for row in rows:
                record: NetworkRecord = _record(NetworkRecord, row)
                has_subnet = (
                    await conn.execute(
                        select(func.count())
                        .select_from(subnets)
                        .where(subnets.c.network_id == record.id)
                    )
                ).scalar_one()
                if has_subnet:
                    return record
        return None

    async def ensure_default_network(self, project_id: str) -> NetworkRecord:
        """The project's network for "auto" allocation, created (with a subnet) if missing."""
        found = await self.project_default_network(project_id)
        if found is not None:
            return found
        network = await self.create_network(
            name=DEFAULT_NETWORK_NAME, project_id=project_id, is_default=True
        )
        gateway = str(ipaddress.ip_network(DEFAULT_SUBNET_CIDR).network_address + 1)
        await self.create_subnet(
            network_id=network.id,
            project_id=project_id,
            name=f"{DEFAULT_NETWORK_NAME}-subnet",
            cidr=DEFAULT_SUBNET_CIDR,
            ip_version=4,
            gateway_ip=gateway,
            allocation_pools=default_pools(DEFAULT_SUBNET_CIDR, gateway),
            dns_nameservers=[],
            host_routes=[],
            enable_dhcp=True,
        )
        return network

    # subnets ----------------------------------------------------------------------------
    async def create_subnet(self, **values: Any) -> SubnetRecord:
        now = utcnow()
        row = {"id": new_uuid(), "created_at": now, "updated_at": now, **values}
        async with self.store.write() as conn:
            await conn.execute(insert(subnets).values(**row))
        found = await self.get_subnet(str(row["id"]))
        assert found is not None
        return found

    async def get_subnet(self, subnet_id: str) -> SubnetRecord | None:
        async with self.store.read() as conn:
            row = (await conn.execute(select(subnets).where(subnets.c.id == subnet_id))).first()
        return None if row is None else _record(SubnetRecord, row)

    async def list_subnets(self, *, network_id: str | None = None) -> list[SubnetRecord]:
        query = select(subnets).order_by(subnets.c.created_at)
        if network_id is not None:
            query = query.where(subnets.c.network_id == network_id)
        async with self.store.read() as conn:
            return [_record(SubnetRecord, r) for r in await conn.execute(query)]

    async def update_subnet(self, subnet_id: str, **values: Any) -> SubnetRecord:
        async with self.store.write() as conn:
            await conn.execute(
                update(subnets)
                .where(subnets.c.id == subnet_id)
                .values(updated_at=utcnow(), **values)
            )
        found = await self.get_subnet(subnet_id)
        if found is None:
            raise NotFound(f"Subnet {subnet_id} could not be found.")
        return found

    async def delete_subnet(self, subnet_id: str) -> None:
        async with self.store.write() as conn:
            used = (
                await conn.execute(
                    select(func.count())
                    .select_from(ip_allocations)
                    .where(ip_allocations.c.subnet_id == subnet_id)
                )
            ).scalar_one()
            if used:
                raise Conflict(
                    f"Unable to complete operation on subnet {subnet_id}: "
                    "One or more ports have an IP allocation from this subnet.",
                    kind="SubnetInUse",
                )
            await conn.execute(delete(subnets).where(subnets.c.id == subnet_id))

    # ports ------------------------------------------------------------------------------
    async def create_port(
        self,
        *,
        network: NetworkRecord,
        project_id: str,
        requested_ips: Sequence[Mapping[str, str]] | None = None,
        **values: Any,
    ) -> PortRecord:
        """A port with fixed IPs: those requested, or the first free one of each subnet."""
        now = utcnow()
        port_id = str(values.pop("id", None) or new_uuid())
        row = {
            "id": port_id,
            "network_id": network.id,
            "project_id": project_id,
            "mac_address": values.pop("mac_address", None) or random_mac(),
            "security_groups": [],
            "created_at": now,
            "updated_at": now,
            **values,
        }
        try:
            async with self.store.write() as conn:
                await conn.execute(insert(ports).values(**row))
                await self._allocate(conn, network.id, port_id, requested_ips)
        except IntegrityError as exc:
            raise Conflict(
                f"IP address or MAC address already in use on network {network.id}.",
                kind="IpAddressAlreadyAllocated",
            ) from exc
        found = await self.get_port(port_id)
        assert found is not None
        return found

    async def _allocate(
        self,
        conn: AsyncConnection,
        network_id: str,
        port_id: str,
        requested: Sequence[Mapping[str, str]] | None,
    ) -> None:
        rows = await conn.execute(select(subnets).where(subnets.c.network_id == network_id))
        nets = [_record(SubnetRecord, r) for r in rows]
        by_id = {s.id: s for s in nets}
        wanted: list[tuple[SubnetRecord, str | None]] = []
        if requested:
            for item in requested:
                subnet = by_id.get(item.get("subnet_id", ""))
                address = item.get("ip_address")
                if subnet is None and address is not None:
                    ip = ipaddress.ip_address(address)
                    subnet = next((s for s in nets if ip in ipaddress.ip_network(s.cidr)), None)
                if subnet is None:
                    raise Conflict(
                        f"No subnet of network {network_id} matches fixed IP {dict(item)}.",
                        kind="InvalidIpForNetwork",
                    )
                wanted.append((subnet, address))
        else:
            chosen = [s for s in nets if s.ip_version == 4][:1] or nets[:1]
            wanted = [(s, None) for s in chosen]
        for subnet, address in wanted:
            if address is None:
                address = await self._first_free(conn, subnet)
            elif ipaddress.ip_address(address) not in ipaddress.ip_network(subnet.cidr):
                raise Conflict(
                    f"IP address {address} is not a valid IP for the specified subnet.",
                    kind="InvalidIpForSubnet",
                )
            await conn.execute(
                insert(ip_allocations).values(
                    subnet_id=subnet.id, ip_address=address, port_id=port_id, network_id=network_id
                )
            )

    async def _first_free(self, conn: AsyncConnection, subnet: SubnetRecord) -> str:
        used_rows = await conn.execute(
            select(ip_allocations.c.ip_address).where(ip_allocations.c.subnet_id == subnet.id)
        )
        used = {r.ip_address for r in used_rows}
        for pool in subnet.allocation_pools:
            start = ipaddress.ip_address(pool["start"])
            end = int(ipaddress.ip_address(pool["end"]))
            # At most len(used) + 2 steps: every step skips a used address.
            candidate = start
            while int(candidate) <= end:
                if str(candidate) not in used and str(candidate) != subnet.gateway_ip:
                    return str(candidate)
                candidate = candidate + 1
        raise Conflict(
            f"No more IP addresses available on network {subnet.network_id}.",
            kind="IpAddressGenerationFailure",
        )

    async def _fixed_ips(
        self, conn: AsyncConnection, port_ids: Sequence[str]
    ) -> dict[str, tuple[FixedIp, ...]]:
        if not port_ids:
            return {}
        rows = await conn.execute(
            select(ip_allocations).where(ip_allocations.c.port_id.in_(list(port_ids)))
        )
        found: dict[str, list[FixedIp]] = {}
        for r in rows:
            found.setdefault(r.port_id, []).append(
                FixedIp(subnet_id=r.subnet_id, ip_address=r.ip_address)
            )
        return {k: tuple(v) for k, v in found.items()}

    async def get_port(self, port_id: str) -> PortRecord | None:
        async with self.store.read() as conn:
            row = (await conn.execute(select(ports).where(ports.c.id == port_id))).first()
            if row is None:
                return None
            ips = await self._fixed_ips(conn, [port_id])
        return _record(PortRecord, row, fixed_ips=ips.get(port_id, ()))  # type: ignore[no-any-return]

    async def list_ports(
        self, *, device_id: str | None = None, network_id: str | None = None
    ) -> list[PortRecord]:
        query = select(ports).order_by(ports.c.created_at)
        if device_id is not None:
            query = query.where(ports.c.device_id == device_id)
        if network_id is not None:
            query = query.where(ports.c.network_id == network_id)
        async with self.store.read() as conn:
            rows = list(await conn.execute(query))
            ips = await self._fixed_ips(conn, [r.id for r in rows])
        return [_record(PortRecord, r, fixed_ips=ips.get(r.id, ())) for r in rows]

    async def update_port(self, port_id: str, **values: Any) -> PortRecord:
        async with self.store.write() as conn:
            await conn.execute(
                update(ports).where(ports.c.id == port_id).values(updated_at=utcnow(), **values)
            )
        found = await self.get_port(port_id)
        if found is None:
            raise NotFound(f"Port {port_id} could not be found.")
        return found

    async def delete_port(self, port_id: str) -> None:
        async with self.store.write() as conn:
            await conn.execute(delete(ip_allocations).where(ip_allocations.c.port_id == port_id))
            await conn.execute(delete(ports).where(ports.c.id == port_id))

    async def delete_ports_of_device(self, device_id: str) -> None:
        async with self.store.write() as conn:
            ids = [
                r.id
                for r in await conn.execute(
                    select(ports.c.id).where(ports.c.device_id == device_id)
                )
            ]
            if ids:
                await conn.execute(delete(ip_allocations).where(ip_allocations.c.port_id.in_(ids)))
                await conn.execute(delete(ports).where(ports.c.id.in_(ids)))

    # security groups ----------------------------------------------------------------------
    async def ensure_default_security_group(self, project_id: str) -> SecurityGroupRecord:
        async with self.store.write() as conn:
            row = (
                await conn.execute(
                    select(security_groups).where(
                        and_(
                            security_groups.c.project_id == project_id,
                            security_groups.c.name == "default",
                        )
                    )
                )
            ).first()
            if row is not None:
                return _record(SecurityGroupRecord, row)  # type: ignore[no-any-return]
            group_id = new_uuid()
            now = utcnow()
            rules = [
                _rule(group_id, project_id, "egress", "IPv4", None),
                _rule(group_id, project_id, "egress", "IPv6", None),
                _rule(group_id, project_id, "ingress", "IPv4", group_id),
                _rule(group_id, project_id, "ingress", "IPv6", group_id),
            ]
            await conn.execute(
                insert(security_groups).values(
                    id=group_id,
                    project_id=project_id,
                    name="default",
                    description="Default security group",
                    rules=rules,
                    created_at=now,
                    updated_at=now,
                )
            )
            row = (
                await conn.execute(select(security_groups).where(security_groups.c.id == group_id))
            ).one()
            return _record(SecurityGroupRecord, row)  # type: ignore[no-any-return]

    async def list_security_groups(self) -> list[SecurityGroupRecord]:
        async with self.store.read() as conn:
            rows = await conn.execute(
                select(security_groups).order_by(security_groups.c.created_at)
            )
            return [_record(SecurityGroupRecord, r) for r in rows]

    # quotas -------------------------------------------------------------------------------
    async def quota_limits(self, project_id: str) -> dict[str, int]:
        async with self.store.read() as conn:
            rows = await conn.execute(
                select(network_quotas).where(network_quotas.c.project_id == project_id)
            )
            return {r.resource: int(r.hard_limit) for r in rows}

    async def set_quota_limits(self, project_id: str, limits: Mapping[str, int]) -> None:
        async with self.store.write() as conn:
            await conn.execute(
                delete(network_quotas).where(
                    and_(
                        network_quotas.c.project_id == project_id,
                        network_quotas.c.resource.in_(list(limits)),
                    )
                )
            )
            for resource, limit in limits.items():
                await conn.execute(
                    insert(network_quotas).values(
                        project_id=project_id, resource=resource, hard_limit=limit
                    )
                )

    async def reset_quota(self, project_id: str) -> None:
        async with self.store.write() as conn:
            await conn.execute(
                delete(network_quotas).where(network_quotas.c.project_id == project_id)
            )

    async def count_by_project(self, project_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        async with self.store.read() as conn:
            for name, table in (
                ("network", networks),
                ("subnet", subnets),
                ("port", ports),
                ("security_group", security_groups),
            ):
                counts[name] = int(
                    (
                        await conn.execute(
                            select(func.count())
                            .select_from(table)
                            .where(table.c.project_id == project_id)
                        )
                    ).scalar_one()
                )
        return counts


def _rule(
    group_id: str, project_id: str, direction: str, ethertype: str, remote_group: str | None
) -> dict[str, Any]:
    return {
        "id": new_uuid(),
        "security_group_id": group_id,
        "project_id": project_id,
        "tenant_id": project_id,
        "direction": direction,
        "ethertype": ethertype,
        "protocol": None,
        "port_range_min": None,
        "port_range_max": None,
        "remote_ip_prefix": None,
        "remote_group_id": remote_group,
        "description": "",
    }
