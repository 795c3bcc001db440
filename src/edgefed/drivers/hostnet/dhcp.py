"""One dnsmasq per network: fixed addresses by MAC, nothing else.

Why dnsmasq, and why this way: it is what Neutron's DHCP agent runs, small, and
serves *static* leases from a hosts file (``--dhcp-range=…,static``: a MAC it does not
know gets nothing), re-read on SIGHUP without dropping a lease. One process per
network, bound to that network's bridge inside the site's namespace
(``--bind-interfaces --interface=br-…``), so networks never see each other's DHCP,
and a network's process goes with the network. DNS is off (``--port=0``): guests get
the subnet's ``dns_nameservers``, as in Neutron.

Files, under the network's directory: ``hosts`` (``mac,address,name`` a line),
``dnsmasq.pid``, ``dnsmasq.args`` (the arguments it was started with: a change of
subnets restarts it), ``dnsmasq.log``. A pid is only signalled when its command line
names our pid file, so a recycled pid is never killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from edgefed.drivers.hostnet.errors import HostNetError
from edgefed.drivers.hostnet.model import NetworkPlan, PortPlan
from edgefed.drivers.hostnet.run import in_netns, run

# How often a stopping dnsmasq is looked at (seconds).
_POLL = 0.02


def dhcp_subnets(network: NetworkPlan) -> list[tuple[str, str, str]]:
    """(tag, CIDR, gateway) of the subnets DHCP serves: IPv4, DHCP enabled, a gateway."""
    return [
        (f"s{i}", s.cidr, s.gateway_ip or "")
        for i, s in enumerate(network.served_subnets)
        if s.enable_dhcp
    ]


def host_name(port: PortPlan, address: str) -> str:
    """The port's hostname, or Neutron's ``host-<address>`` with dashes."""
    return port.hostname or "host-" + address.replace(".", "-")


def hosts_file(network: NetworkPlan, ports: Iterable[PortPlan]) -> str:
    """``mac,address,name`` for each port of ``network`` with an address in a served
    subnet (its first such address: a NIC asks DHCP for one)."""
    served = [ipaddress.ip_network(cidr) for _, cidr, _ in dhcp_subnets(network)]
    lines = []
    for port in ports:
        if port.network_id != network.network_id:
            continue
        found = [a for a in port.ipv4s if any(ipaddress.ip_address(a) in n for n in served)]
        if found:
            lines.append(f"{port.mac},{found[0]},{host_name(port, found[0])}")
    return "".join(f"{line}\n" for line in sorted(lines))


def dnsmasq_args(network: NetworkPlan, directory: Path, *, lease_seconds: int) -> list[str]:
    args = [
        "--conf-file=/dev/null",
        "--no-resolv",
        "--no-hosts",
        "--port=0",
        "--bind-interfaces",
        f"--interface={network.bridge}",
        "--except-interface=lo",
        "--no-ping",
        "--dhcp-authoritative",
        "--leasefile-ro",
        f"--dhcp-hostsfile={directory / 'hosts'}",
        f"--pid-file={directory / 'dnsmasq.pid'}",
        f"--log-facility={directory / 'dnsmasq.log'}",
    ]
    for tag, cidr, gateway in dhcp_subnets(network):
        net = ipaddress.ip_network(cidr)
        args.append(
            f"--dhcp-range=set:{tag},{net.network_address},static,{net.netmask},{lease_seconds}s"
        )
        args.append(f"--dhcp-option=tag:{tag},option:router,{gateway}")
        subnet = next(s for s in network.served_subnets if s.cidr == cidr)
        if subnet.dns_nameservers:
            servers = ",".join(subnet.dns_nameservers)
            args.append(f"--dhcp-option=tag:{tag},option:dns-server,{servers}")
    if network.mtu != 1500:
        args.append(f"--dhcp-option=option:mtu,{network.mtu}")
    return args


class Dnsmasq:
    """The DHCP server of one network of one site namespace."""

    def __init__(
        self,
        *,
        netns: str,
        directory: Path,
        binary: str = "dnsmasq",
        timeout: float = 10.0,
        stop_timeout: float = 5.0,
    ) -> None:
        self.netns = netns
        self.directory = directory
        self.binary = binary
        self.timeout = timeout
        self.stop_timeout = stop_timeout

    @property
    def pidfile(self) -> Path:
        return self.directory / "dnsmasq.pid"

    def pid(self) -> int | None:
        """The pid of our running dnsmasq, if there is one (its command line names our
        pid file: a recycled pid is not ours)."""
        try:
            pid = int(self.pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if f"--pid-file={self.pidfile}".encode() in cmdline.split(b"\0") else None

    async def ensure(
        self, network: NetworkPlan, ports: Iterable[PortPlan], *, lease_seconds: int
    ) -> None:
        """Serve ``ports`` on ``network``: start dnsmasq, or make it re-read its hosts;
        restart it when its arguments changed (subnets, MTU)."""
        step = f"serve DHCP on {network.bridge} in {self.netns}"
        args = "\n".join(dnsmasq_args(network, self.directory, lease_seconds=lease_seconds))
        recorded = self.directory / "dnsmasq.args"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            _write(self.directory / "hosts", hosts_file(network, ports))
            previous = recorded.read_text() if recorded.exists() else None
        except OSError as exc:
            raise HostNetError(step, str(exc)) from exc
        pid = self.pid()
        if pid is not None and previous == args:
            try:
                os.kill(pid, signal.SIGHUP)
                return
            except ProcessLookupError:
                pass  # it just exited: start it again
        await self.stop()
        await run(
            in_netns(self.netns, [self.binary, *args.split("\n")]), step=step, timeout=self.timeout
        )
        try:
            _write(recorded, args)
        except OSError as exc:
            raise HostNetError(step, str(exc)) from exc
        if self.pid() is None:
            raise HostNetError(step, f"dnsmasq did not stay up (see {self.directory}/dnsmasq.log)")

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout``; returns once it is gone."""
        pid = self.pid()
        if pid is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            deadline = time.monotonic() + self.stop_timeout
            while self.pid() == pid and time.monotonic() < deadline:
                await asyncio.sleep(_POLL)
            if self.pid() != pid:
                break
        else:
            raise HostNetError(f"stop dnsmasq {pid} in {self.netns}", "it did not exit")
        with contextlib.suppress(OSError):
            self.pidfile.unlink()


def _write(path: Path, text: str) -> None:
    """Replace ``path`` at once (dnsmasq may read it at any time)."""
    partial = path.with_name(path.name + ".new")
    partial.write_text(text)
    partial.chmod(0o644)
    partial.replace(path)
