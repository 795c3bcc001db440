"""Ports and IP address management: fixed IPs allocated inside the port's transaction.

A new port gets the addresses it asks for, or the first free address of its network's
first IPv4 subnet (its first subnet when it has no IPv4 one). Allocation happens in the
write transaction that inserts the port, and ``(subnet_id, ip_address)`` is the
allocations table's primary key: two requests racing for one address cannot both get
it, the second fails the constraint (409 ``IpAddressAlreadyAllocated``).

A port's security groups are rows of the bindings table, written in the port's
transactions; a port made without saying gets its project's default group, as in
Neutron.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from edgefed.core.errors import Conflict
from edgefed.store.engine import AsyncConnection
from edgefed.store.network.groups import SecurityGroups, count_of, over_quota
from edgefed.store.network.locks import ALLOCATION_LOCK, serialise
from edgefed.store.network.tables import (
    FixedIp,
    NewPort,
    PortRecord,
    SubnetRecord,
    ip_allocations,
    port_security_groups,
    ports,
    subnets,
)
from edgefed.store.records import RecordMapper, RecordRepository, Related, column_values

_SUBNETS = RecordMapper(SubnetRecord)
_FIXED_IPS = select(ip_allocations).where(
    ip_allocations.c.port_id.in_(bindparam("ids", expanding=True))
)
_GROUPS_OF = (
    select(port_security_groups)
    .where(port_security_groups.c.port_id.in_(bindparam("ids", expanding=True)))
    .order_by(port_security_groups.c.security_group_id)
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
        Related("security_groups", _GROUPS_OF, key="port_id", item=lambda r: r.security_group_id),
    )

    async def create(self, *, new: NewPort, limit: int = -1) -> PortRecord:
        """A port with fixed IPs: those requested, or the first free one (racing ports
        get different ones).

        ValueError for a requested address that is not an IP address; 409 for one
        outside the network's subnets, a subnet without free addresses, or an address
        or MAC already taken; 409 ``OverQuota`` when the project has ``limit`` ports
        (-1, the compute service's: no limit).
        """
        values = column_values(new)
        requested = values.pop("requested_ips")
        values["mac_address"] = values["mac_address"] or random_mac()
        groups = values.pop("security_groups")
        if groups is None:
            groups = [(await SecurityGroups(self.store).ensure_default(new.project_id)).id]
        values = self.stamped(values)
        try:
            async with self.store.write() as conn:
                await serialise(self.store, conn, ALLOCATION_LOCK)
                if 0 <= limit <= await count_of(conn, ports, new.project_id):
                    raise over_quota("port")
                await conn.execute(insert(ports).values(**values))
                await _allocate(conn, new.network_id, values["id"], requested)
                await bind_groups(conn, values["id"], groups)
        except IntegrityError as exc:
            raise Conflict(
                f"IP address or MAC address already in use on network {new.network_id}.",
                kind="IpAddressAlreadyAllocated",
            ) from exc
        found = await self.get(id=values["id"])
        assert found is not None
        return found

    async def update(self, *, id: str, changes: Mapping[str, Any]) -> PortRecord | None:
        """Set ``changes``; ``security_groups`` (ids) replaces the port's groups."""
        changes = dict(changes)
        groups = changes.pop("security_groups", None)
        self.check_columns(changes)
        async with self.store.write() as conn:
            result = await conn.execute(
                update(ports).where(ports.c.id == id).values(updated_at=self.now(), **changes)
            )
            if result.rowcount and groups is not None:
                await bind_groups(conn, id, groups)
        return await self.get(id=id) if result.rowcount else None

    async def delete(self, *, id: str) -> bool:
        async with self.store.write() as conn:
            result = await delete_ports(conn, [id])
        return bool(result)

    async def delete_of_device(self, device_id: str) -> None:
        """Delete the ports of a server (and free their addresses)."""
        async with self.store.write() as conn:
            ids = [
                row.id
                for row in await conn.execute(
                    select(ports.c.id).where(ports.c.device_id == device_id)
                )
            ]
            await delete_ports(conn, ids)


async def delete_ports(conn: AsyncConnection, ids: Sequence[str]) -> int:
    """Delete ports with their addresses and group bindings; how many there were."""
    if not ids:
        return 0
    await conn.execute(delete(ip_allocations).where(ip_allocations.c.port_id.in_(ids)))
    await conn.execute(delete(port_security_groups).where(port_security_groups.c.port_id.in_(ids)))
    result = await conn.execute(delete(ports).where(ports.c.id.in_(ids)))
    return int(result.rowcount)


async def bind_groups(conn: AsyncConnection, port_id: str, group_ids: Sequence[str]) -> None:
    """Make ``group_ids`` the port's security groups."""
    await conn.execute(
        delete(port_security_groups).where(port_security_groups.c.port_id == port_id)
    )
    wanted = list(dict.fromkeys(group_ids))
    if wanted:
        await conn.execute(
            insert(port_security_groups),
            [{"port_id": port_id, "security_group_id": g} for g in wanted],
        )


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
