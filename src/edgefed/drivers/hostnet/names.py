"""The names of what the library makes on a host, derived from Neutron's ids.

Linux interface names hold at most 15 characters (IFNAMSIZ - 1), so a bridge is
``br-`` and a tap ``tap`` followed by the first 11 characters of the network's or
port's id: 14 characters, unique enough for random UUIDs, and readable back to the
Neutron object (Nova and Neutron's Linux bridge agent name theirs the same way).
Everything lives inside the site's namespace (``edgefed-<site>``), so two sites on one
host never collide. nftables identifiers take letters, digits and ``_`` only: ids
become ``_``-separated there.

Names end up on command lines and in nft text: anything outside the expected
alphabet is refused here rather than quoted later.
"""

from __future__ import annotations

import hashlib
import re

from edgefed.drivers.hostnet.errors import HostNetError

IFNAME_MAX = 15
NAMESPACE_PREFIX = "edgefed-"
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_SITE = re.compile(r"[^a-z0-9-]+")


def checked_id(value: str, *, what: str) -> str:
    """``value`` when it is a usable id (letters, digits, ``-``, ``_``; at most 64)."""
    if not _ID.match(value):
        raise HostNetError(f"name a {what}", f"{value!r} is not a usable id")
    return value


def namespace_name(site: str) -> str:
    """``edgefed-<site>``: the site's name lower-cased, runs of other characters as ``-``
    (a namespace is a file name under /run/netns; QEMU's driver takes at most 64)."""
    slug = _SITE.sub("-", site.lower()).strip("-")
    if not slug:
        raise HostNetError("name the site's namespace", f"{site!r} has no usable character")
    return NAMESPACE_PREFIX + slug[: 64 - len(NAMESPACE_PREFIX)]


def bridge_name(network_id: str) -> str:
    return "br-" + checked_id(network_id, what="network")[:11]


def tap_name(port_id: str) -> str:
    return "tap" + checked_id(port_id, what="port")[:11]


def nft_id(value: str) -> str:
    """An id as part of an nftables identifier (set, map or chain name)."""
    return checked_id(value, what="security object").replace("-", "_")


def tap_mac(port_mac: str) -> str:
    """The host side of a port's tap: the port's MAC with ``fe`` as first octet.

    The tap must not carry the guest's own MAC: a bridge delivers frames addressed to
    one of its ports' MACs to the host instead of forwarding them, so the guest would
    never receive them. ``fe:`` (libvirt's choice) is also high enough that the
    bridge never takes it as its own address.
    """
    return "fe:" + port_mac.lower()[3:]


def bridge_mac(network_id: str) -> str:
    """A stable, locally administered MAC for a network's bridge.

    Left alone, a bridge takes the lowest MAC of its ports, so it would change as taps
    come and go and the guests' ARP entries for their gateway would go stale.
    """
    digest = hashlib.sha256(network_id.encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])
