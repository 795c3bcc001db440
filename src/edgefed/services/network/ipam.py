"""A subnet request checked as Neutron's IPAM checks it, before anything is stored.

A valid CIDR matching ``ip_version`` and leaving room for hosts, no overlap with the
network's other subnets, a gateway inside the CIDR (default: its first address; JSON
``null`` for none), DNS servers that are addresses, and allocation pools inside the
CIDR that do not cover the gateway (default: every host address but the gateway).
Addresses are handed out by the store (``edgefed.store.network.ports``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from edgefed.core.errors import BadRequest, Conflict
from edgefed.services.network.neutron import bad_input
from edgefed.store.network import default_pools

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class SubnetPlan:
    net: IpNetwork
    gateway_ip: str | None
    dns_nameservers: list[str]


def plan_subnet(data: dict[str, Any], *, network_id: str, taken: Iterable[str]) -> SubnetPlan:
    """The CIDR, gateway and DNS servers of a new subnet of ``network_id``, whose other
    subnets have the CIDRs ``taken``; 400 ``InvalidInput`` naming what is wrong."""
    raw_cidr = data.get("cidr")
    if raw_cidr is None:  # Neutron would take one from a subnet pool; there are none here
        raise BadRequest(
            "Bad subnets request: a subnetpool must be specified in the absence of a cidr."
        )
    try:
        net = ipaddress.ip_network(str(raw_cidr), strict=False)
    except ValueError as exc:
        raise bad_input(f"'{raw_cidr}' is not a valid IP subnet (field 'cidr')") from exc
    version = data.get("ip_version", net.version)
    if version not in (4, 6):
        raise bad_input(f"{version} is not in [4, 6] (field 'ip_version')")
    if version != net.version:
        raise bad_input(f"Cidr {net} does not match ip_version {version}")
    if net.num_addresses < 4 and net.version == 4:
        raise bad_input(f"Cidr {net} is too small: it leaves no address for hosts")
    for cidr in taken:
        if ipaddress.ip_network(cidr).overlaps(net):
            raise bad_input(
                f"Requested subnet with cidr: {net} for network: {network_id} overlaps with "
                "another subnet"
            )
    return SubnetPlan(net=net, gateway_ip=_gateway(data, net), dns_nameservers=_dns(data))


def _gateway(data: dict[str, Any], net: IpNetwork) -> str | None:
    if "gateway_ip" in data and data["gateway_ip"] is None:
        return None
    if not data.get("gateway_ip"):
        return str(net.network_address + 1)
    try:
        gateway = ipaddress.ip_address(str(data["gateway_ip"]))
    except ValueError as exc:
        raise bad_input(
            f"'{data['gateway_ip']}' is not a valid IP address (field 'gateway_ip')"
        ) from exc
    if gateway not in net:
        raise bad_input(f"Gateway IP {gateway} is not in subnet {net}")
    return str(gateway)


def _dns(data: dict[str, Any]) -> list[str]:
    servers = data.get("dns_nameservers", [])
    if not isinstance(servers, list):
        raise bad_input("dns_nameservers must be a list")
    for server in servers:
        try:
            ipaddress.ip_address(str(server))
        except ValueError as exc:
            raise bad_input(f"'{server}' is not a valid nameserver") from exc
    return [str(server) for server in servers]


def pools(data: dict[str, Any], net: IpNetwork, gateway: str | None) -> list[dict[str, str]]:
    """The allocation pools asked for (each inside the CIDR, none over the gateway), or
    the default ones."""
    raw = data.get("allocation_pools")
    if raw is None:
        return default_pools(str(net), gateway)
    if not isinstance(raw, list):
        raise bad_input("allocation_pools must be a list of {start, end}")
    found = []
    for pool in raw:
        try:
            start = ipaddress.ip_address(pool["start"])
            end = ipaddress.ip_address(pool["end"])
        except (KeyError, TypeError, ValueError) as exc:
            raise bad_input(f"invalid allocation pool {pool!r}") from exc
        if start not in net or end not in net or int(end) < int(start):
            raise BadRequest(
                f"The allocation pool {start}-{end} spans beyond the subnet cidr {net}.",
                kind="InvalidAllocationPool",
            )
        if gateway is not None and int(start) <= int(ipaddress.ip_address(gateway)) <= int(end):
            raise Conflict(
                f"Gateway ip {gateway} conflicts with allocation pool {start}-{end}.",
                kind="GatewayConflictWithAllocationPools",
            )
        found.append({"start": str(start), "end": str(end)})
    return found
