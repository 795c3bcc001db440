"""Security groups → one nftables ruleset for a site's namespace (pure: text out).

Why this shape (measured on the hosts we run on; docs/network.md, "On the hosts"):

* Stateful filtering needs conntrack, and bridge-family conntrack (``ct state`` in a
  ``bridge`` table) is missing from some kernels; ``br_netfilter`` is there, and with
  ``bridge-nf-call-iptables = 1`` bridged IPv4 passes the ``inet`` hooks *with*
  conntrack. So the groups live in ``table inet edgefed_sg``. There ``iifname`` is the
  bridge, not the tap, so ports are told apart by their fixed IPs: ``ip daddr vmap
  @port_in`` jumps to the port's ingress chain, ``ip saddr vmap @port_out`` to its
  egress chain.
* A source address is only worth trusting if guests cannot forge it: ``table bridge
  edgefed_spoof`` pins each tap to its port's MAC and IPs (and ARP to the same), drops
  what is neither IPv4 nor ARP, and DHCP answers coming from a guest.
* Neutron's semantics: established and related traffic passes; an ingress chain
  accepts what a rule of the port's groups allows and drops the rest; an egress chain
  *returns* what is allowed (the destination's ingress is checked next) and drops the
  rest; DHCP to and from the site's dnsmasq always passes. Traffic from the host (the
  namespace's own addresses: gateways, dnsmasq) obeys the same ingress rules
  (``output`` hook), as a Neutron router's would.
* A remote group is an nft set of its members' addresses; a prefix is matched as is
  (``0.0.0.0/0``: anything).

The whole text replaces both tables in one ``nft -f`` transaction (declare, delete,
declare again: atomic, and idempotent whether or not the tables exist), so a
ruleset is never half applied; rendering it again from the whole model on every
port or rule change is cheaper than keeping increments right (tens of ms).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from edgefed.drivers.hostnet.errors import HostNetError
from edgefed.drivers.hostnet.model import ICMP, PORT_PROTOCOLS, FirewallPlan, PortPlan, Rule
from edgefed.drivers.hostnet.names import nft_id

SG_TABLE = "edgefed_sg"  # family inet
SPOOF_TABLE = "edgefed_spoof"  # family bridge
TABLES = (("inet", SG_TABLE), ("bridge", SPOOF_TABLE))

_STEP = "render the security groups"
# The source of a DHCP client's requests and ARP probes before it has an address.
UNSPECIFIED = "0.0.0.0"  # noqa: S104 - an address matched, not one bound


def removal() -> str:
    """The transaction that removes both tables (whether or not they exist)."""
    return "".join(f"table {f} {t}\ndelete table {f} {t}\n" for f, t in TABLES)


def _elements(items: Iterable[str]) -> str:
    listed = list(dict.fromkeys(items))
    return f" elements = {{ {', '.join(listed)} }};" if listed else ""


def match(rule: Rule) -> str | None:
    """The nft match of a rule ("" matches everything), None for a rule this host does
    not enforce (IPv6)."""
    if rule.ethertype != "IPv4":
        return None
    parts: list[str] = []
    peer = "saddr" if rule.direction == "ingress" else "daddr"
    if rule.remote_group_id is not None:
        parts.append(f"ip {peer} @sg_{nft_id(rule.remote_group_id)}")
    elif rule.remote_ip_prefix is not None:
        prefix = ipaddress.ip_network(rule.remote_ip_prefix, strict=False)
        if prefix.version != 4:
            return None
        if prefix.prefixlen:
            parts.append(f"ip {peer} {prefix}")
    proto = rule.protocol
    if proto == ICMP:
        parts.append("meta l4proto 1")
        if rule.port_range_min is not None:
            parts.append(f"icmp type {rule.port_range_min}")
            if rule.port_range_max is not None:
                parts.append(f"icmp code {rule.port_range_max}")
    elif proto:
        parts.append(f"meta l4proto {proto}")
        if proto in PORT_PROTOCOLS and rule.port_range_min is not None:
            low = rule.port_range_min
            high = rule.port_range_max if rule.port_range_max is not None else low
            parts.append(f"th dport {low}" if low == high else f"th dport {low}-{high}")
    return " ".join(parts)


def _chain(name: str, lines: Iterable[str]) -> list[str]:
    return [f"  chain {name} {{", *(f"    {line}" for line in lines), "  }"]


def _rules_of(plan: FirewallPlan, port: PortPlan, direction: str) -> list[str]:
    verdict = "accept" if direction == "ingress" else "return"
    found: list[str] = []
    for group in port.security_group_ids:
        for rule in plan.groups.get(group, ()):
            if rule.direction == direction:
                expr = match(rule)
                if expr is not None:
                    found.append(f"{expr} {verdict}".strip())
    return list(dict.fromkeys(found))


def _owners(ports: Iterable[PortPlan]) -> dict[str, str]:
    owner: dict[str, str] = {}
    for port in ports:
        for address in port.ipv4s:
            other = owner.setdefault(address, port.port_id)
            if other != port.port_id:
                raise HostNetError(
                    _STEP,
                    f"address {address} is held by ports {other} and {port.port_id} "
                    "(overlapping networks in one site are not supported)",
                )
    return owner


def _groups_table(plan: FirewallPlan, ports: list[PortPlan]) -> list[str]:
    owner = _owners(ports)
    remote = dict.fromkeys(
        rule.remote_group_id
        for port in ports
        for group in port.security_group_ids
        for rule in plan.groups.get(group, ())
        if rule.remote_group_id is not None and rule.ethertype == "IPv4"
    )
    lines = [f"table inet {SG_TABLE} {{"]
    for group in remote:
        assert group is not None
        members = _elements(plan.members_of(group))
        lines.append(f"  set sg_{nft_id(group)} {{ type ipv4_addr;{members} }}")
    ins = (f"{a} : jump in_{nft_id(p)}" for a, p in owner.items())
    outs = (f"{a} : jump out_{nft_id(p)}" for a, p in owner.items())
    lines.append(f"  map port_in {{ type ipv4_addr : verdict;{_elements(ins)} }}")
    lines.append(f"  map port_out {{ type ipv4_addr : verdict;{_elements(outs)} }}")
    established = ("ct state established,related accept", "ct state invalid drop")
    hook = "type filter hook {} priority 0; policy accept;"
    lines += _chain(
        "forward",
        (hook.format("forward"), *established, "ip saddr vmap @port_out", "ip daddr vmap @port_in"),
    )
    lines += _chain(
        "output",
        (hook.format("output"), *established, "udp sport 67 udp dport 68 accept",
         "ip daddr vmap @port_in"),
    )  # fmt: skip
    lines += _chain(
        "input",
        (hook.format("input"), *established, "udp sport 68 udp dport 67 accept",
         "ip saddr vmap @port_out"),
    )  # fmt: skip
    for port in ports:
        if not port.ipv4s:
            continue
        name = nft_id(port.port_id)
        lines += _chain(f"in_{name}", (*_rules_of(plan, port, "ingress"), "counter drop"))
        lines += _chain(f"out_{name}", (*_rules_of(plan, port, "egress"), "counter drop"))
    lines.append("}")
    return lines


def _spoof_table(ports: list[PortPlan]) -> list[str]:
    by_tap: dict[str, str] = {}
    for port in ports:
        other = by_tap.setdefault(port.tap, port.port_id)
        if other != port.port_id:
            raise HostNetError(_STEP, f"ports {other} and {port.port_id} share tap {port.tap}")
    taps = (f'"{p.tap}" : jump from_{nft_id(p.port_id)}' for p in ports)
    lines = [
        f"table bridge {SPOOF_TABLE} {{",
        f"  map tap_from {{ type ifname : verdict;{_elements(taps)} }}",
        *_chain(
            "prerouting",
            ("type filter hook prerouting priority -200; policy accept;", "iifname vmap @tap_from"),
        ),
    ]
    for port in ports:
        addresses = port.ipv4s
        own = (
            f"ip saddr != {{ {', '.join(addresses)} }} counter drop"
            if addresses
            else "ether type ip counter drop"
        )
        lines += _chain(
            f"from_{nft_id(port.port_id)}",
            (
                f"ether saddr != {port.mac} counter drop",
                "ether type != { ip, arp } counter drop",
                f"arp saddr ether != {port.mac} counter drop",
                f"arp saddr ip != {{ {', '.join((UNSPECIFIED, *addresses))} }} counter drop",
                "udp sport 67 counter drop",
                f"ip saddr {UNSPECIFIED} udp dport 67 return",
                own,
            ),
        )
    lines.append("}")
    return lines


def render(plan: FirewallPlan) -> str:
    """The nft transaction that makes both tables say exactly what ``plan`` says."""
    ports = [p for p in plan.ports if p.port_security]
    text = [removal().rstrip("\n"), *_groups_table(plan, ports), *_spoof_table(ports)]
    return "\n".join(text) + "\n"
