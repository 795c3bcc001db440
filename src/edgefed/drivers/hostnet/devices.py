"""The kernel objects of a site: its namespace, a bridge per network, a tap per port.

Everything is made with ``ip`` inside the site's namespace and read back from it
(``ip -d -j link show``), never from a record of our own: after an agent restart, a
host reboot or a half-finished call, what the kernel holds is the truth, and every
operation here is idempotent against it (made if missing, corrected if different,
left alone if right).

Taps are persistent (``ip tuntap add``): QEMU, started under ``ip netns exec``, opens
one by name and the tap outlives it, so a guest restarts on the same tap, already on
its bridge and under its rules. Bridges carry their subnets' gateway addresses: the
namespace is the guests' gateway and DHCP server, and how the host reaches them.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from edgefed.drivers.hostnet.errors import HostNetError
from edgefed.drivers.hostnet.run import DEFAULT_TIMEOUT, in_netns, run

# Made once per namespace: no IPv6 (not served: no link-local chatter, no SLAAC
# between guests), no routing between the site's networks (Neutron needs a router
# for that), and bridged IPv4 through the inet hooks (the security groups).
NAMESPACE_SYSCTLS = (
    ("net.ipv4.ip_forward", "0"),
    ("net.ipv6.conf.all.disable_ipv6", "1"),
    ("net.ipv6.conf.default.disable_ipv6", "1"),
    ("net.bridge.bridge-nf-call-iptables", "1"),
)


@dataclass(frozen=True, slots=True)
class Link:
    """An interface of the namespace, as ``ip -d -j link show`` describes it."""

    name: str
    kind: str  # "bridge", "tun", "veth", "" (loopback)…
    mac: str
    mtu: int
    master: str | None
    up: bool

    @classmethod
    def of(cls, entry: dict[str, Any]) -> Link:
        return cls(
            name=str(entry["ifname"]),
            kind=str(entry.get("linkinfo", {}).get("info_kind", "")),
            mac=str(entry.get("address", "")),
            mtu=int(entry.get("mtu", 0)),
            master=entry.get("master"),
            up="UP" in entry.get("flags", ()),
        )


class Devices:
    """The links of one namespace, driven through ``ip``."""

    def __init__(self, netns: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.netns = netns
        self.timeout = timeout

    async def _ip(self, *args: str, step: str) -> str:
        return await run(["ip", *args], step=f"{step} in {self.netns}", timeout=self.timeout)

    # -- the namespace -------------------------------------------------------------------

    async def namespace_exists(self) -> bool:
        listed = await run(["ip", "-j", "netns", "list"], step="list namespaces")
        return any(n.get("name") == self.netns for n in _json(listed or "[]", "list namespaces"))

    async def ensure_namespace(self) -> None:
        if not await self.namespace_exists():
            await run(["ip", "netns", "add", self.netns], step=f"create namespace {self.netns}")
        await self._ip("-n", self.netns, "link", "set", "lo", "up", step="bring lo up")
        settings = [f"{key}={value}" for key, value in NAMESPACE_SYSCTLS]
        await run(
            in_netns(self.netns, ["sysctl", "-q", "-e", "-w", *settings]),
            step=f"set up namespace {self.netns}",
            timeout=self.timeout,
        )

    async def delete_namespace(self) -> None:
        if await self.namespace_exists():
            await run(["ip", "netns", "delete", self.netns], step=f"delete namespace {self.netns}")

    async def read_proc(self, path: str) -> str | None:
        """A /proc file as the namespace sees it (None when it does not exist)."""
        try:
            said = await run(
                in_netns(self.netns, ["cat", path]), step=f"read {path}", timeout=self.timeout
            )
        except HostNetError:
            return None
        return said.strip()

    # -- links ------------------------------------------------------------------------

    async def links(self) -> dict[str, Link]:
        said = await self._ip("-n", self.netns, "-d", "-j", "link", "show", step="list links")
        return {link.name: link for link in map(Link.of, _json(said, "list links"))}

    async def ipv4_addresses(self, device: str) -> set[str]:
        said = await self._ip(
            "-n", self.netns, "-j", "-4", "addr", "show", "dev", device, step=f"read {device}"
        )
        return {
            f"{a['local']}/{a['prefixlen']}"
            for entry in _json(said, f"read {device}")
            for a in entry.get("addr_info", ())
        }

    async def ensure_bridge(
        self, name: str, *, mac: str, mtu: int, addresses: Iterable[str], found: Link | None
    ) -> None:
        """A bridge with exactly ``addresses`` (``10.0.0.1/24``…), up."""
        step = f"set up bridge {name}"
        if found is not None and found.kind != "bridge":
            raise HostNetError(f"{step} in {self.netns}", f"{name} exists and is a {found.kind}")
        if found is None:
            await self._ip(
                "-n", self.netns, "link", "add", "name", name, "address", mac, "mtu", str(mtu),
                "type", "bridge", step=step,
            )  # fmt: skip
        elif found.mac != mac or found.mtu != mtu:
            await self._ip(
                "-n", self.netns, "link", "set", "dev", name, "address", mac, "mtu", str(mtu),
                step=step,
            )  # fmt: skip
        wanted = {str(ipaddress.ip_interface(a)) for a in addresses}
        present = await self.ipv4_addresses(name)
        for extra in sorted(present - wanted):
            await self._ip("-n", self.netns, "addr", "del", extra, "dev", name, step=step)
        for missing in sorted(wanted - present):
            await self._ip("-n", self.netns, "addr", "add", missing, "dev", name, step=step)
        if found is None or not found.up:
            await self._ip("-n", self.netns, "link", "set", "dev", name, "up", step=step)

    async def ensure_tap(
        self, name: str, *, bridge: str, mac: str, mtu: int, found: Link | None
    ) -> None:
        """A persistent tap on ``bridge``, up (its carrier comes with the guest)."""
        step = f"set up tap {name}"
        if found is not None and found.kind != "tun":
            raise HostNetError(f"{step} in {self.netns}", f"{name} exists and is a {found.kind}")
        if found is None:
            await self._ip("-n", self.netns, "tuntap", "add", "dev", name, "mode", "tap", step=step)
        if found is None or (found.mac, found.mtu, found.master, found.up) != (
            mac,
            mtu,
            bridge,
            True,
        ):
            await self._ip(
                "-n", self.netns, "link", "set", "dev", name, "address", mac, "mtu", str(mtu),
                "master", bridge, "up", step=step,
            )  # fmt: skip

    async def delete_link(self, name: str) -> None:
        await self._ip("-n", self.netns, "link", "delete", "dev", name, step=f"delete {name}")


def _json(text: str, step: str) -> list[dict[str, Any]]:
    try:
        found = json.loads(text) if text.strip() else []
    except ValueError as exc:
        raise HostNetError(step, f"ip printed something that is not JSON: {text[:200]!r}") from exc
    if not isinstance(found, list):
        raise HostNetError(step, "ip printed JSON that is not a list")
    return found
