"""What the host is asked to wire: networks, ports and the security groups they are in.

Plain frozen values, checked when made, so a bad input fails before anything on the
host changes. They mirror Neutron's data model (a network and its subnets, a port and
its fixed IPs, a rule's direction, protocol, port range and remote), reduced to what a
host needs: the agent builds them from what the control plane tells it (the store's
``port_security`` view) without this library knowing where they come from.

IPv4 only: IPv6 addresses and ``IPv6`` rules are accepted and ignored (the bridge
drops IPv6 from guests; docs/network.md, "On the hosts").
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from edgefed.drivers.hostnet.errors import HostNetError
from edgefed.drivers.hostnet.names import bridge_name, checked_id, tap_name

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_HOSTNAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Protocols whose rules may carry a port range (Neutron's SG_PORT_PROTO_NUMS):
# dccp, tcp, udp, udplite, sctp.
PORT_PROTOCOLS = frozenset({6, 17, 33, 132, 136})
ICMP = 1


def _bad(what: str, why: str) -> HostNetError:
    return HostNetError(f"check {what}", why)


def ipv4(value: str) -> bool:
    try:
        return ipaddress.ip_address(value).version == 4
    except ValueError as exc:
        raise _bad("an address", f"{value!r} is not an IP address") from exc


@dataclass(frozen=True, slots=True)
class SubnetPlan:
    subnet_id: str
    cidr: str
    gateway_ip: str | None = None
    enable_dhcp: bool = True
    dns_nameservers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        checked_id(self.subnet_id, what="subnet")
        try:
            net = ipaddress.ip_network(self.cidr)
        except ValueError as exc:
            raise _bad(f"subnet {self.subnet_id}", f"{self.cidr!r} is not a CIDR") from exc
        if self.gateway_ip is not None and ipaddress.ip_address(self.gateway_ip) not in net:
            raise _bad(f"subnet {self.subnet_id}", f"gateway {self.gateway_ip} is outside it")
        for server in self.dns_nameservers:
            ipv4(server)

    @property
    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        return ipaddress.ip_network(self.cidr)

    @property
    def served(self) -> bool:
        """Whether the host serves it: IPv4 with a gateway address for the bridge."""
        return self.network.version == 4 and self.gateway_ip is not None


@dataclass(frozen=True, slots=True)
class NetworkPlan:
    network_id: str
    subnets: tuple[SubnetPlan, ...] = ()
    mtu: int = 1500

    def __post_init__(self) -> None:
        checked_id(self.network_id, what="network")
        if not 68 <= self.mtu <= 9000:
            raise _bad(f"network {self.network_id}", f"MTU {self.mtu} is not within 68-9000")

    @property
    def bridge(self) -> str:
        return bridge_name(self.network_id)

    @property
    def served_subnets(self) -> tuple[SubnetPlan, ...]:
        return tuple(s for s in self.subnets if s.served)


@dataclass(frozen=True, slots=True)
class PortPlan:
    port_id: str
    network_id: str
    mac: str
    ips: tuple[str, ...] = ()
    # The name DHCP gives the guest (a DNS label); "": host-<address>, as Neutron.
    hostname: str = ""
    security_group_ids: tuple[str, ...] = ()
    # False: no filtering and no anti-spoofing (Neutron's port_security_enabled).
    port_security: bool = True

    def __post_init__(self) -> None:
        checked_id(self.port_id, what="port")
        checked_id(self.network_id, what="network")
        if not _MAC.match(self.mac):
            raise _bad(f"port {self.port_id}", f"{self.mac!r} is not a lower-case MAC address")
        if self.mac == "00:00:00:00:00:00" or int(self.mac[:2], 16) & 1:
            raise _bad(f"port {self.port_id}", f"{self.mac} is not a unicast MAC address")
        for address in self.ips:
            ipv4(address)
        for group in self.security_group_ids:
            checked_id(group, what="security group")
        if self.hostname and not _HOSTNAME.match(self.hostname):
            raise _bad(f"port {self.port_id}", f"{self.hostname!r} is not a DNS label")

    @property
    def tap(self) -> str:
        return tap_name(self.port_id)

    @property
    def ipv4s(self) -> tuple[str, ...]:
        return tuple(a for a in self.ips if ipv4(a))


@dataclass(frozen=True, slots=True)
class Rule:
    """One security group rule, as Neutron states it (protocol as its number)."""

    direction: Literal["ingress", "egress"]
    ethertype: Literal["IPv4", "IPv6"] = "IPv4"
    protocol: int | None = None  # None (or 0): any
    port_range_min: int | None = None  # ICMP: the type
    port_range_max: int | None = None  # ICMP: the code
    remote_ip_prefix: str | None = None
    remote_group_id: str | None = None

    def __post_init__(self) -> None:
        if self.direction not in ("ingress", "egress"):
            raise _bad("a rule", f"direction {self.direction!r} is neither ingress nor egress")
        if self.ethertype not in ("IPv4", "IPv6"):
            raise _bad("a rule", f"ethertype {self.ethertype!r} is neither IPv4 nor IPv6")
        if self.protocol is not None and not 0 <= self.protocol <= 255:
            raise _bad("a rule", f"protocol {self.protocol} is not within 0-255")
        for bound in (self.port_range_min, self.port_range_max):
            if bound is not None and not 0 <= bound <= 65535:
                raise _bad("a rule", f"port {bound} is not within 0-65535")
        if self.remote_ip_prefix is not None and self.remote_group_id is not None:
            raise _bad("a rule", "it names both a remote prefix and a remote group")
        if self.remote_ip_prefix is not None:
            try:
                ipaddress.ip_network(self.remote_ip_prefix, strict=False)
            except ValueError as exc:
                raise _bad("a rule", f"{self.remote_ip_prefix!r} is not a CIDR") from exc
        if self.remote_group_id is not None:
            checked_id(self.remote_group_id, what="security group")


@dataclass(frozen=True, slots=True)
class FirewallPlan:
    """The security of the ports on one host: the whole ruleset is rendered from it.

    ``groups``: the rules of every group a port is in (a group not listed has no
    rules). ``members``: the addresses in each group that a rule names as its remote,
    across the site (a member may run on another host); groups not listed there count
    the ports of ``ports`` that are in them.
    """

    ports: tuple[PortPlan, ...] = ()
    groups: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict)
    members: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def members_of(self, group_id: str) -> tuple[str, ...]:
        if group_id in self.members:
            return tuple(a for a in self.members[group_id] if ipv4(a))
        return tuple(a for p in self.ports if group_id in p.security_group_ids for a in p.ipv4s)


@dataclass(frozen=True, slots=True)
class SitePlan:
    """Everything one host wires for a site: what ``SiteNetwork.apply`` makes true.

    Networks not listed lose their bridge and DHCP server, ports not listed their tap.
    """

    networks: tuple[NetworkPlan, ...] = ()
    ports: tuple[PortPlan, ...] = ()
    groups: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict)
    members: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bridges: dict[str, str] = {}
        served: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]] = []
        for network in self.networks:
            other = bridges.setdefault(network.bridge, network.network_id)
            if other != network.network_id:
                raise _bad(
                    "the site's networks", f"{other} and {network.network_id} share a bridge"
                )
            for subnet in network.served_subnets:
                for cidr, owner in served:
                    if owner != network.network_id and cidr.overlaps(subnet.network):
                        raise _bad(
                            "the site's networks",
                            f"{subnet.cidr} of network {network.network_id} overlaps {cidr} of "
                            f"network {owner}: overlapping networks in one site are not supported",
                        )
                served.append((subnet.network, network.network_id))
        for port in self.ports:
            if port.network_id not in bridges.values():
                raise _bad(f"port {port.port_id}", f"its network {port.network_id} is not planned")

    @property
    def firewall(self) -> FirewallPlan:
        return FirewallPlan(ports=self.ports, groups=self.groups, members=self.members)

    def network(self, network_id: str) -> NetworkPlan:
        return next(n for n in self.networks if n.network_id == network_id)
