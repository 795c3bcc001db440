"""What a host must enforce for some ports: their addresses, groups and rules, and the
members of every group those rules name as remote, read in one transaction.

For the compute side (the host agent), which never imports the network service: it
asks for the ports on one host (or of some networks) and gets plain frozen records,
the rules as Neutron states them (plus each protocol's number), ready to become a
``hostnet`` plan. Members are taken across the whole site: a remote group's member
may run on another host.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from edgefed.store.engine import AsyncConnection, Store
from edgefed.store.network.groups import RULES
from edgefed.store.network.tables import (
    SecurityGroupRuleRecord,
    ip_allocations,
    port_security_groups,
    ports,
    security_group_rules,
)


@dataclass(frozen=True, slots=True)
class PortSecurity:
    """One port as its host filters it: the rules that apply to it, of all its groups."""

    port_id: str
    network_id: str
    device_id: str
    mac_address: str
    ip_addresses: tuple[str, ...]
    security_group_ids: tuple[str, ...]
    rules: tuple[SecurityGroupRuleRecord, ...]


@dataclass(frozen=True, slots=True)
class SecurityView:
    ports: tuple[PortSecurity, ...]
    # Remote group id → the addresses of every port in it, across the site.
    members: Mapping[str, tuple[str, ...]]

    def port(self, port_id: str) -> PortSecurity:
        return next(p for p in self.ports if p.port_id == port_id)


async def port_security(
    store: Store,
    *,
    port_ids: Sequence[str] | None = None,
    network_ids: Sequence[str] | None = None,
    device_ids: Sequence[str] | None = None,
) -> SecurityView:
    """The ports matching every filter given (all ports when none is), with their rules
    and the members of their rules' remote groups."""
    query = select(ports.c.id, ports.c.network_id, ports.c.device_id, ports.c.mac_address)
    for column, values in (
        (ports.c.id, port_ids),
        (ports.c.network_id, network_ids),
        (ports.c.device_id, device_ids),
    ):
        if values is not None:
            query = query.where(column.in_(list(values)))
    async with store.read() as conn:
        rows = list(await conn.execute(query.order_by(ports.c.created_at, ports.c.id)))
        ids = [row.id for row in rows]
        addresses = await _addresses(conn, ids)
        bindings: dict[str, list[str]] = {}
        for row in await conn.execute(
            select(port_security_groups)
            .where(port_security_groups.c.port_id.in_(ids))
            .order_by(port_security_groups.c.security_group_id)
        ):
            bindings.setdefault(row.port_id, []).append(row.security_group_id)
        groups = sorted({g for found in bindings.values() for g in found})
        rules: dict[str, list[SecurityGroupRuleRecord]] = {}
        for rule in RULES.all(
            await conn.execute(
                select(security_group_rules)
                .where(security_group_rules.c.security_group_id.in_(groups))
                .order_by(security_group_rules.c.created_at, security_group_rules.c.id)
            )
        ):
            rules.setdefault(rule.security_group_id, []).append(rule)
        remote = sorted(
            {r.remote_group_id for found in rules.values() for r in found if r.remote_group_id}
        )
        members: dict[str, list[str]] = {group: [] for group in remote}
        for row in await conn.execute(
            select(port_security_groups.c.security_group_id, ip_allocations.c.ip_address)
            .join(ip_allocations, ip_allocations.c.port_id == port_security_groups.c.port_id)
            .where(port_security_groups.c.security_group_id.in_(remote))
            .order_by(ip_allocations.c.ip_address)
        ):
            members[row.security_group_id].append(row.ip_address)
    return SecurityView(
        ports=tuple(
            PortSecurity(
                port_id=row.id,
                network_id=row.network_id,
                device_id=row.device_id,
                mac_address=row.mac_address,
                ip_addresses=tuple(addresses.get(row.id, ())),
                security_group_ids=tuple(bindings.get(row.id, ())),
                rules=tuple(r for g in bindings.get(row.id, ()) for r in rules.get(g, ())),
            )
            for row in rows
        ),
        members={group: tuple(found) for group, found in members.items()},
    )


async def _addresses(conn: AsyncConnection, ids: list[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for row in await conn.execute(
        select(ip_allocations.c.port_id, ip_allocations.c.ip_address)
        .where(ip_allocations.c.port_id.in_(ids))
        .order_by(ip_allocations.c.ip_address)
    ):
        found.setdefault(row.port_id, []).append(row.ip_address)
    return found
