"""IP protocols as security group rules name them (Neutron's ``IP_PROTOCOL_MAP``).

A rule keeps the protocol as it was given ("tcp", "6"), as Neutron shows it back; two
rules that differ only in naming it are the same rule, and the host enforces the
number, so both readings live here, once.
"""

from __future__ import annotations

IP_PROTOCOLS: dict[str, int] = {
    "ah": 51,
    "dccp": 33,
    "egp": 8,
    "esp": 50,
    "gre": 47,
    "hopopt": 0,
    "icmp": 1,
    "igmp": 2,
    "ip": 0,
    "ipip": 4,
    "ipv6-encap": 41,
    "ipv6-frag": 44,
    "ipv6-icmp": 58,
    "icmpv6": 58,
    "ipv6-nonxt": 59,
    "ipv6-opts": 60,
    "ipv6-route": 43,
    "ospf": 89,
    "pgm": 113,
    "rsvp": 46,
    "sctp": 132,
    "tcp": 6,
    "udp": 17,
    "udplite": 136,
    "vrrp": 112,
}
# Protocols whose rules take a port range (Neutron's SG_PORT_PROTO_NAMES), as Neutron
# lists them in its message.
PORT_PROTOCOLS: dict[str, int] = {"dccp": 33, "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136}
ICMP_PROTOCOLS = frozenset({1, 58})
# Protocols only IPv6 carries: an IPv4 rule naming one is refused.
IPV6_ONLY = frozenset({41, 43, 44, 58, 59, 60})
# What "any protocol" is spelled as, besides no protocol at all.
ANY = "any"


def protocol_number(protocol: str | None) -> int | None:
    """The number of a rule's protocol (a name or a number as text); None for any."""
    if protocol is None or protocol == ANY:
        return None
    if protocol in IP_PROTOCOLS:
        return IP_PROTOCOLS[protocol]
    return int(protocol)
