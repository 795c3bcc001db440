"""Ports and IP address management: fixed IPs allocated inside the port's transaction.

A new port gets the addresses it asks for, or the first free address of its network's
first IPv4 subnet (its first subnet when it has no IPv4 one). Allocation happens in the
write transaction that inserts the port, and ``(subnet_id, ip_address)`` is the
allocations table's primary key: two requests racing for one address cannot both get
it, the second fails the constraint (409 ``IpAddressAlreadyAllocated``).
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Mapping, Sequence

from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from edgefed.core.errors import Conflict
from edgefed.store.engine import AsyncConnection, Store
from edgefed.store.network.tables import (
    FixedIp,
    NewPort,
    PortRecord,
    SubnetRecord,
    ip_allocations,
    ports,
    subnets,
)
from edgefed.store.records import RecordMapper, RecordRepository, Related, column_values

_SUBNETS = RecordMapper(SubnetRecord)
# Advisory locks (arbitrary constant keys) that serialise, on PostgreSQL, what SQLite's
# single writer serialises anyway: address allocation, and the defaults made on first use.
ALLOCATION_LOCK = 0x65646766_0101
DEFAULTS_LOCK = 0x65646766_0102
_FIXED_IPS = select(ip_allocations).where(
    ip_allocations.c.port_id.in_(bindparam("ids", expanding=True))
)


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


def first_free(subnet: SubnetRecord, used: set[str]) -> str | None:
    """The lowest address of the subnet's pools that is neither used nor the gateway.

    At most ``len(used) + 2`` steps per pool, however large: every step skips a used
    address.
    """
    for pool in subnet.allocation_pools:
        candidate = ipaddress.ip_address(pool["start"])
        end = int(ipaddress.ip_address(pool["end"]))
        while int(candidate) <= end:
            if str(candidate) not in used and str(candidate) != subnet.gateway_ip:
                return str(candidate)
            candidate = candidate + 1
    return None


async def serialise(store: Store, conn: AsyncConnection, key: int) -> None:
    """Hold ``key`` until this write transaction ends (PostgreSQL, read committed, lets
    two transactions read the same free address; SQLite has one writer)."""
    if not store.is_sqlite:
        await conn.execute(select(func.pg_advisory_xact_lock(key)))


def random_mac() -> str:
    tail = [random.randint(0, 255) for _ in range(3)]
    return "fa:16:3e:" + ":".join(f"{b:02x}" for b in tail)


class Ports(RecordRepository[PortRecord, NewPort]):
    table = ports
    mapper = RecordMapper(PortRecord)
    related = (
        Related(
            "fixed_ips",
            _FIXED_IPS,
            key="port_id",
            item=lambda row: FixedIp(row.subnet_id, row.ip_address),
        ),
    )

    async def create(self, *, new: NewPort) -> PortRecord:
        """A port with fixed IPs: those requested, or the first free one (racing ports
        get different ones).

        ValueError for a requested address that is not an IP address; 409 for one
        outside the network's subnets, a subnet without free addresses, or an address
        or MAC already taken.
        """
        values = column_values(new)
        requested = values.pop("requested_ips")
        values["mac_address"] = values["mac_address"] or random_mac()
        values["security_groups"] = list(values["security_groups"])
        values = self.stamped(values)
        try:
            async with self.store.write() as conn:
                await serialise(self.store, conn, ALLOCATION_LOCK)
                await conn.execute(insert(ports).values(**values))
                await _allocate(conn, new.network_id, values["id"], requested)
        except IntegrityError as exc:
            raise Conflict(
                f"IP address or MAC address already in use on network {new.network_id}.",
                kind="IpAddressAlreadyAllocated",
            ) from exc
        found = await self.get(id=values["id"])
        assert found is not None
        return found

    async def delete(self, *, id: str) -> bool:
        async with self.store.write() as conn:
            await conn.execute(delete(ip_allocations).where(ip_allocations.c.port_id == id))
            result = await conn.execute(delete(ports).where(ports.c.id == id))
        return bool(result.rowcount)

    async def delete_of_device(self, device_id: str) -> None:
        """Delete the ports of a server (and free their addresses)."""
        async with self.store.write() as conn:
            ids = [
                row.id
                for row in await conn.execute(
                    select(ports.c.id).where(ports.c.device_id == device_id)
                )
            ]
            if ids:
                await conn.execute(delete(ip_allocations).where(ip_allocations.c.port_id.in_(ids)))
                await conn.execute(delete(ports).where(ports.c.id.in_(ids)))


async def _allocate(
    conn: AsyncConnection,
    network_id: str,
    port_id: str,
    requested: Sequence[Mapping[str, str]] | None,
) -> None:
    found = await conn.execute(
        select(subnets).where(subnets.c.network_id == network_id).order_by(subnets.c.created_at)
    )
    candidates = _SUBNETS.all(found)
    by_id = {s.id: s for s in candidates}
    wanted: list[tuple[SubnetRecord, str | None]] = []
    if requested:
        for item in requested:
            subnet = by_id.get(item.get("subnet_id", ""))
            address = item.get("ip_address")
            if subnet is None and address is not None:
                ip = ipaddress.ip_address(address)
                subnet = next((s for s in candidates if ip in ipaddress.ip_network(s.cidr)), None)
            if subnet is None:
                raise Conflict(
                    f"No subnet of network {network_id} matches fixed IP {dict(item)}.",
                    kind="InvalidIpForNetwork",
                )
            wanted.append((subnet, address))
    else:
        chosen = [s for s in candidates if s.ip_version == 4][:1] or candidates[:1]
        wanted = [(s, None) for s in chosen]
    for subnet, address in wanted:
        if address is None:
            used = await conn.execute(
                select(ip_allocations.c.ip_address).where(ip_allocations.c.subnet_id == subnet.id)
            )
            address = first_free(subnet, {row.ip_address for row in used})
            if address is None:
                raise Conflict(
                    f"No more IP addresses available on network {subnet.network_id}.",
                    kind="IpAddressGenerationFailure",
                )
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
