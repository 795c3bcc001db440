"""A site's networking on one host, made to match a plan: ``SiteNetwork``.

The agent does not tell the library what changed; it hands over the whole plan (the
site's networks, the ports on this host, their security groups) after every port or
rule change, and ``apply`` makes the host match it: bridges and taps made or
corrected, the DHCP hosts rewritten, the ruleset replaced in one transaction, and
whatever the plan no longer names removed. Declarative because an agent restarts,
misses events and adopts what a previous run left behind: applying the current plan
repairs all of it, and applying it twice changes nothing.

Layout (docs/network.md, "On the hosts"): namespace ``edgefed-<site>``; in it a bridge
``br-<network id[:11]>`` per network holding its subnets' gateway addresses, a tap
``tap<port id[:11]>`` per port (QEMU runs under ``ip netns exec`` and opens it by
name), a dnsmasq per network, ``table inet edgefed_sg`` and ``table bridge
edgefed_spoof``. The host reaches guests from inside the namespace (``exec_argv``).
``teardown`` removes all of it.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgefed.drivers.hostnet import preflight, ruleset
from edgefed.drivers.hostnet.devices import Devices, Link
from edgefed.drivers.hostnet.dhcp import Dnsmasq, dhcp_subnets
from edgefed.drivers.hostnet.errors import HostNetError
from edgefed.drivers.hostnet.model import FirewallPlan, NetworkPlan, SitePlan
from edgefed.drivers.hostnet.names import bridge_mac, namespace_name, tap_mac
from edgefed.drivers.hostnet.run import in_netns, run


@dataclass(frozen=True, slots=True)
class HostNetSettings:
    """Built once by the agent. Every wait of the library has its bound here."""

    # dnsmasq's files: <state_dir>/<namespace>/<network id>/
    state_dir: Path
    # any one host command (ip, nft, sysctl, dnsmasq's start)
    command_timeout: float = 10.0
    # a dnsmasq's exit after SIGTERM (and again after SIGKILL)
    stop_timeout: float = 5.0
    lease_seconds: int = 86400
    dnsmasq: str = "dnsmasq"


class SiteNetwork:
    """The networks of one site on this host; calls are serialised."""

    def __init__(self, site: str, *, settings: HostNetSettings) -> None:
        self.settings = settings
        self.namespace = namespace_name(site)
        self.devices = Devices(self.namespace, timeout=settings.command_timeout)
        self.directory = settings.state_dir / self.namespace
        self._lock = asyncio.Lock()
        self._started = False

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` as a command run in the site's namespace: how the host reaches its
        guests (``ping``, ``ssh``) and how QEMU is started next to its taps."""
        return in_netns(self.namespace, argv)

    def dhcp(self, network_id: str) -> Dnsmasq:
        return Dnsmasq(
            netns=self.namespace,
            directory=self.directory / network_id,
            binary=self.settings.dnsmasq,
            timeout=self.settings.command_timeout,
            stop_timeout=self.settings.stop_timeout,
        )

    async def start(self) -> None:
        """Check the host, then make the namespace (idempotent; ``apply`` calls it)."""
        async with self._lock:
            await self._start()

    async def _start(self) -> None:
        if self._started:
            return
        preflight.check_tools(dnsmasq=self.settings.dnsmasq)
        preflight.check_state_dir(self.directory)
        await self.devices.ensure_namespace()
        await preflight.check_namespace(self.devices)
        self._started = True

    async def apply(self, plan: SitePlan) -> None:
        """Make this host's wiring of the site exactly ``plan``."""
        async with self._lock:
            await self._start()
            links = await self.devices.links()
            for network in plan.networks:
                await self._network(network, links.get(network.bridge))
            for port in plan.ports:
                network = plan.network(port.network_id)
                await self.devices.ensure_tap(
                    port.tap,
                    bridge=network.bridge,
                    mac=tap_mac(port.mac),
                    mtu=network.mtu,
                    found=links.get(port.tap),
                )
            await self._firewall(plan.firewall)
            for network in plan.networks:
                dhcp = self.dhcp(network.network_id)
                if dhcp_subnets(network):
                    await dhcp.ensure(
                        network, plan.ports, lease_seconds=self.settings.lease_seconds
                    )
                else:
                    await dhcp.stop()
            await self._remove_stale(plan, links)

    async def apply_firewall(self, plan: FirewallPlan) -> None:
        """Replace only the ruleset (a rule changed, the ports did not)."""
        async with self._lock:
            await self._start()
            await self._firewall(plan)

    async def _network(self, network: NetworkPlan, found: Link | None) -> None:
        addresses = [f"{s.gateway_ip}/{s.network.prefixlen}" for s in network.served_subnets]
        await self.devices.ensure_bridge(
            network.bridge,
            mac=bridge_mac(network.network_id),
            mtu=network.mtu,
            addresses=addresses,
            found=found,
        )

    async def _firewall(self, plan: FirewallPlan) -> None:
        await run(
            self.exec_argv(["nft", "-f", "-"]),
            step=f"apply the security groups in {self.namespace}",
            stdin=ruleset.render(plan),
            timeout=self.settings.command_timeout,
        )

    async def _remove_stale(self, plan: SitePlan, links: dict[str, Link]) -> None:
        taps = {p.tap for p in plan.ports}
        bridges = {n.bridge for n in plan.networks}
        for link in links.values():
            if link.kind == "tun" and link.name.startswith("tap") and link.name not in taps:
                await self.devices.delete_link(link.name)
        wanted = {n.network_id for n in plan.networks}
        for stale in self._dhcp_directories() - wanted:
            await self.dhcp(stale).stop()
            _remove_tree(self.directory / stale)
        for link in links.values():
            if link.kind == "bridge" and link.name.startswith("br-") and link.name not in bridges:
                await self.devices.delete_link(link.name)

    def _dhcp_directories(self) -> set[str]:
        try:
            return {d.name for d in self.directory.iterdir() if d.is_dir()}
        except FileNotFoundError:
            return set()

    async def teardown(self) -> None:
        """Remove everything this site made on the host: its DHCP servers, then the
        namespace (its bridges, taps and nft tables go with it), then its files.

        Guests must be stopped first: a QEMU still running in the namespace keeps it
        (and its taps) alive after the name is gone.
        """
        async with self._lock:
            for network_id in sorted(self._dhcp_directories()):
                await self.dhcp(network_id).stop()
            if await self.devices.namespace_exists():
                await run(
                    self.exec_argv(["nft", "-f", "-"]),
                    step=f"remove the security groups in {self.namespace}",
                    stdin=ruleset.removal(),
                    timeout=self.settings.command_timeout,
                )
                await self.devices.delete_namespace()
            _remove_tree(self.directory)
            self._started = False


def _remove_tree(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise HostNetError(f"remove {path}", str(exc)) from exc
