"""The network service's tables and records (Neutron's data model, kept small).

``(subnet_id, ip_address)`` is the primary key of the allocations table, so an address
is never handed out twice, even when two requests race: the second fails the
constraint instead of duplicating (``ports.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Boolean, Column, Integer, String, Table, Text

from edgefed.store.network.protocols import protocol_number
from edgefed.store.schema import JsonDoc, UtcDateTime, metadata

# The group every project has, made on first use with Neutron's default rules.
DEFAULT_GROUP_NAME = "default"

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
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Rows, as Neutron keeps them: a rule is found by id, listed by group, and a group's
# deletion takes the rules that name it as their remote group.
security_group_rules = Table(
    "net_security_group_rules",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("security_group_id", String(36), nullable=False, index=True),
    Column("project_id", String(64), nullable=False, index=True),
    Column("direction", String(16), nullable=False),
    Column("ethertype", String(8), nullable=False),
    # As given: a name ("tcp") or a number as text ("6"); NULL for any.
    Column("protocol", String(40), nullable=True),
    Column("port_range_min", Integer, nullable=True),
    Column("port_range_max", Integer, nullable=True),
    Column("remote_ip_prefix", String(64), nullable=True),
    Column("remote_group_id", String(36), nullable=True, index=True),
    Column("description", Text, nullable=False, default=""),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# Which groups a port is in (Neutron's securitygroupportbindings): "is this group in
# use" and "who are its members" are queries, not scans of every port.
port_security_groups = Table(
    "net_port_security_groups",
    metadata,
    Column("port_id", String(36), primary_key=True),
    Column("security_group_id", String(36), primary_key=True, index=True),
)

network_quotas = Table(
    "net_quotas",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("resource", String(64), primary_key=True),
    Column("hard_limit", Integer, nullable=False),
)


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
    # Its subnets, oldest first (from the subnets table).
    subnet_ids: tuple[str, ...] = ()


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
    created_at: dt.datetime
    updated_at: dt.datetime
    fixed_ips: tuple[FixedIp, ...] = ()
    # The ids of its security groups (from the bindings table).
    security_groups: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SecurityGroupRuleRecord:
    id: str
    security_group_id: str
    project_id: str
    direction: str
    ethertype: str
    protocol: str | None
    port_range_min: int | None
    port_range_max: int | None
    remote_ip_prefix: str | None
    remote_group_id: str | None
    description: str
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def protocol_number(self) -> int | None:
        """The protocol as the host enforces it: its number, None for any."""
        return protocol_number(self.protocol)


@dataclass(frozen=True, slots=True)
class SecurityGroupRecord:
    id: str
    project_id: str
    name: str
    description: str
    created_at: dt.datetime
    updated_at: dt.datetime
    # Its rules, oldest first (from the rules table).
    rules: tuple[SecurityGroupRuleRecord, ...] = ()

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_GROUP_NAME


# What a create takes: the fields a caller chooses; ids and timestamps are the store's.


@dataclass(frozen=True, slots=True)
class NewNetwork:
    name: str
    project_id: str
    description: str = ""
    admin_state_up: bool = True
    shared: bool = False
    external: bool = False
    is_default: bool = False
    mtu: int = 1500


@dataclass(frozen=True, slots=True)
class NewSubnet:
    network_id: str
    project_id: str
    cidr: str
    ip_version: int
    gateway_ip: str | None
    allocation_pools: list[dict[str, str]]
    name: str = ""
    description: str = ""
    dns_nameservers: list[str] = field(default_factory=list)
    host_routes: list[Any] = field(default_factory=list)
    enable_dhcp: bool = True


@dataclass(frozen=True, slots=True)
class NewPort:
    network_id: str
    project_id: str
    name: str = ""
    description: str = ""
    device_id: str = ""
    device_owner: str = ""
    # None: a random one (fa:16:3e:…, as Neutron's default base MAC).
    mac_address: str | None = None
    admin_state_up: bool = True
    status: str = "DOWN"
    # None: the project's default group (made if missing), as Neutron; (): none.
    security_groups: Sequence[str] | None = None
    # Fixed IPs asked for ({subnet_id and/or ip_address} each); None: the first free
    # address of the network's first IPv4 subnet (or its first subnet).
    requested_ips: Sequence[Mapping[str, str]] | None = None


@dataclass(frozen=True, slots=True)
class NewSecurityGroup:
    name: str
    project_id: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class NewSecurityGroupRule:
    security_group_id: str
    project_id: str
    direction: str
    ethertype: str = "IPv4"
    protocol: str | None = None
    port_range_min: int | None = None
    port_range_max: int | None = None
    remote_ip_prefix: str | None = None
    remote_group_id: str | None = None
    description: str = ""
