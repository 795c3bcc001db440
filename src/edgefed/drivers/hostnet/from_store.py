"""A plan from the network store's records: what the host agent hands ``SiteNetwork``.

Kept apart from the rest of the library (not imported by ``hostnet``'s ``__init__``)
because it imports the store, and an agent that gets the same records over the wire
need not load it: the mapping is one-to-one, field by field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from edgefed.drivers.hostnet.model import (
    FirewallPlan,
    NetworkPlan,
    PortPlan,
    Rule,
    SitePlan,
    SubnetPlan,
)
from edgefed.store.network import (
    NetworkRecord,
    PortSecurity,
    SecurityGroupRuleRecord,
    SecurityView,
    SubnetRecord,
)

_LABEL = re.compile(r"[^a-z0-9-]+")


def network_plan(network: NetworkRecord, subnets: Iterable[SubnetRecord]) -> NetworkPlan:
    return NetworkPlan(
        network_id=network.id,
        mtu=network.mtu,
        subnets=tuple(
            SubnetPlan(
                subnet_id=s.id,
                cidr=s.cidr,
                gateway_ip=s.gateway_ip,
                enable_dhcp=s.enable_dhcp,
                dns_nameservers=tuple(s.dns_nameservers),
            )
            for s in subnets
            if s.network_id == network.id
        ),
    )


def hostname(name: str) -> str:
    """A server's name as a DNS label ("" when nothing of it is usable)."""
    return _LABEL.sub("-", name.lower()).strip("-")[:63].strip("-")


def port_plan(port: PortSecurity, *, name: str = "") -> PortPlan:
    return PortPlan(
        port_id=port.port_id,
        network_id=port.network_id,
        mac=port.mac_address.lower(),
        ips=port.ip_addresses,
        hostname=hostname(name),
        security_group_ids=port.security_group_ids,
    )


def rule(record: SecurityGroupRuleRecord) -> Rule:
    return Rule(
        direction="ingress" if record.direction == "ingress" else "egress",
        ethertype="IPv6" if record.ethertype == "IPv6" else "IPv4",
        protocol=record.protocol_number,
        port_range_min=record.port_range_min,
        port_range_max=record.port_range_max,
        remote_ip_prefix=record.remote_ip_prefix,
        remote_group_id=record.remote_group_id,
    )


def firewall_plan(view: SecurityView) -> FirewallPlan:
    return FirewallPlan(
        ports=tuple(port_plan(p) for p in view.ports),
        groups=_groups(view.ports),
        members=dict(view.members),
    )


def site_plan(
    view: SecurityView,
    networks: Sequence[NetworkPlan],
    *,
    names: Mapping[str, str] | None = None,
) -> SitePlan:
    """The plan of a host: its ports (``view``, e.g. ``port_security(device_ids=…)`` for
    the servers it runs), the networks they are on, and the DHCP names of their
    servers (``names``: device id → server name)."""
    names = names or {}
    return SitePlan(
        networks=tuple(networks),
        ports=tuple(port_plan(p, name=names.get(p.device_id, "")) for p in view.ports),
        groups=_groups(view.ports),
        members=dict(view.members),
    )


def _groups(ports: Iterable[PortSecurity]) -> dict[str, tuple[Rule, ...]]:
    groups: dict[str, list[Rule]] = {}
    for port in ports:
        for group in port.security_group_ids:
            groups.setdefault(group, [])
        for record in port.rules:
            found = groups.setdefault(record.security_group_id, [])
            if rule(record) not in found:
                found.append(rule(record))
    return {group: tuple(rules) for group, rules in groups.items()}
