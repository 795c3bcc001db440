"""A site's networking on this host, with real traffic: namespace, bridge, taps, dnsmasq,
security groups, anti-spoofing, then a teardown that leaves nothing behind.

Guests are stood in for by network namespaces: a small relay process (this file run
as a script) holds the port's persistent tap open, as QEMU would, and copies frames
to and from a tap of its own inside the guest's namespace, which carries the port's
MAC. So traffic goes through the very tap, bridge and rules the library made, and the
guest side runs busybox's DHCP client, ping, httpd and wget.

Everything the test makes has a name with this process's id; it talks only to those
namespaces, and removes them all.
"""

from __future__ import annotations

import ctypes
import fcntl
import json
import os
import select
import shutil
import struct
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from qemu_site import host_ready

from edgefed.drivers.hostnet import (
    HostNetSettings,
    NetworkPlan,
    PortPlan,
    Rule,
    SiteNetwork,
    SitePlan,
    SubnetPlan,
)
from edgefed.drivers.hostnet.names import tap_mac
from edgefed.testkit.wait import until

HOSTNET_TOOLS = ("ip", "nft", "dnsmasq", "busybox", "sysctl")


pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not host_ready(HOSTNET_TOOLS), reason="needs root, ip, nft, dnsmasq, busybox, tun"
    ),
]

TAG = f"hn{os.getpid()}"
CIDR, GATEWAY = "10.213.0.0/24", "10.213.0.1"
NETWORK = str(uuid.uuid4())
DEFAULT, WEB = str(uuid.uuid4()), str(uuid.uuid4())
DEFAULT_RULES = (
    Rule("ingress", remote_group_id=DEFAULT),
    Rule("ingress", "IPv6", remote_group_id=DEFAULT),
    Rule("egress"),
    Rule("egress", "IPv6"),
)
# The web group takes nothing in until a rule says so; it may send anything.
WEB_RULES = (Rule("egress"),)
HTTP_RULE = Rule("ingress", protocol=6, port_range_min=8080, port_range_max=8080,
                 remote_ip_prefix="0.0.0.0/0")  # fmt: skip


def sh(argv: list[str], *, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def wget(url: str, seconds: int = 2) -> list[str]:
    """busybox's wget, bounded by busybox's timeout (its own -T crashes in this build)."""
    return ["busybox", "timeout", str(seconds), "busybox", "wget", "-q", "-O", "-", url]


def port(n: int, *groups: str) -> PortPlan:
    return PortPlan(
        port_id=str(uuid.uuid4()),
        network_id=NETWORK,
        mac=f"fa:16:3e:5e:00:{n:02x}",
        ips=(f"10.213.0.{10 + n}",),
        security_group_ids=groups,
    )


class StandIn:
    """A guest: a namespace whose ``eth0`` is wired to the port's tap by a relay."""

    def __init__(self, name: str, port: PortPlan, site: SiteNetwork, tmp: Path) -> None:
        self.port = port
        self.site = site
        self.netns = f"efg-{TAG}-{name}"
        self.tmp = tmp / name
        self.relay: subprocess.Popen[bytes] | None = None
        self.servers: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        self.tmp.mkdir(parents=True)
        assert sh(["ip", "netns", "add", self.netns]).returncode == 0
        sh(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        ready = self.tmp / "ready"
        self.relay = subprocess.Popen(
            [sys.executable, __file__, self.site.namespace, self.port.tap, self.netns,
             self.port.mac, str(ready)],
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        until(ready.exists, within=10, every=0.05, what=f"the relay of {self.netns}")

    def run(self, *argv: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        return sh(["ip", "netns", "exec", self.netns, *argv], timeout=timeout)

    def serve(self, *argv: str) -> None:
        self.servers.append(
            subprocess.Popen(["ip", "netns", "exec", self.netns, *argv], stderr=subprocess.DEVNULL)
        )

    def dhcp(self) -> tuple[str, str]:
        """(address, router) the DHCP server gave, once configured on eth0."""
        script, out = self.tmp / "udhcpc.sh", self.tmp / "lease"
        script.write_text(
            "#!/bin/sh\n"
            'case "$1" in bound|renew)\n'
            '  ip addr flush dev "$interface"\n'
            '  ip addr add "$ip/$mask" dev "$interface"\n'
            f'  echo "$ip $router" > {out} ;;\n'
            "esac\n"
        )
        script.chmod(0o755)
        said = self.run("busybox", "udhcpc", "-i", "eth0", "-f", "-q", "-n", "-t", "5", "-T",
                        "1", "-s", str(script), timeout=20)  # fmt: skip
        log = self.site.directory / self.port.network_id / "dnsmasq.log"
        assert said.returncode == 0, said.stderr + (log.read_text() if log.exists() else "")
        address, router = out.read_text().split()
        return address, router

    def pings(self, address: str, *, source: str | None = None) -> bool:
        extra = ["-I", source] if source else []
        return self.run("busybox", "ping", "-c", "1", "-W", "1", *extra, address).returncode == 0

    def fetches(self, url: str) -> bool:
        said = self.run(*wget(url))
        return said.returncode == 0 and "served" in said.stdout

    def echo_requests_received(self) -> int:
        snmp = self.run("cat", "/proc/net/snmp").stdout.splitlines()
        names, values = (line.split() for line in snmp if line.startswith("Icmp:"))
        return int(values[names.index("InEchos")])

    def stop(self) -> None:
        for process in [*self.servers, *([self.relay] if self.relay else [])]:
            process.kill()
            process.wait(timeout=5)
        sh(["ip", "netns", "delete", self.netns])


def host_fetches(site: SiteNetwork, url: str) -> bool:
    said = sh(site.exec_argv(wget(url)))
    return said.returncode == 0


def spoofed_sources_dropped(site: SiteNetwork, port: PortPlan) -> int:
    """The packets the port's anti-spoofing chain dropped for their IPv4 source."""
    chain = f"from_{port.port_id.replace('-', '_')}"
    listed = sh(site.exec_argv(["nft", "-j", "list", "chain", "bridge", "edgefed_spoof", chain]))
    for item in json.loads(listed.stdout)["nftables"]:
        expr = item.get("rule", {}).get("expr", [])
        counted = [e["counter"]["packets"] for e in expr if "counter" in e]
        source = {"payload": {"protocol": "ip", "field": "saddr"}}
        if counted and any(e.get("match", {}).get("left") == source for e in expr):
            return int(counted[0])
    raise AssertionError(f"no counted rule on the IPv4 source in {chain}")


def leftovers(site: SiteNetwork, state_dir: Path) -> list[str]:
    """What of the site is still on the host."""
    found = []
    if site.namespace in sh(["ip", "netns", "list"]).stdout:
        found.append(f"namespace {site.namespace}")
    links = json.loads(sh(["ip", "-j", "link", "show"]).stdout)
    found += [f"link {x['ifname']}" for x in links if x["ifname"].startswith(("tap", "br-"))
              and x["ifname"][3:].startswith(NETWORK[:8])]  # fmt: skip
    found += [f"table {line}" for line in sh(["nft", "list", "tables"]).stdout.splitlines()
              if "edgefed" in line]  # fmt: skip
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"dnsmasq" in cmdline and str(state_dir).encode() in cmdline:
            found.append(f"dnsmasq {pid}")
    if state_dir.exists() and any(state_dir.iterdir()):
        found.append(f"files in {state_dir}")
    return found


@pytest.fixture
async def site() -> AsyncIterator[tuple[SiteNetwork, list[StandIn]]]:
    # Not under pytest's private temporary directory: dnsmasq, running as nobody, must
    # reach its hosts file.
    state_dir = Path("/run") / f"edgefed-test-{TAG}"
    network = SiteNetwork(TAG, settings=HostNetSettings(state_dir=state_dir))
    guests: list[StandIn] = []
    try:
        yield network, guests
    finally:
        for guest in guests:
            guest.stop()
        await network.teardown()
        shutil.rmtree(state_dir, ignore_errors=True)


async def test_a_site_network_with_dhcp_groups_and_anti_spoofing(site, tmp_path):
    net, guests = site
    state_dir = net.settings.state_dir
    p1, p2, p3 = port(1, DEFAULT), port(2, DEFAULT), port(3, WEB)
    a1, a2, a3 = (p.ips[0] for p in (p1, p2, p3))
    network = NetworkPlan(NETWORK, (SubnetPlan(str(uuid.uuid4()), CIDR, GATEWAY),))

    def plan(*ports: PortPlan, web: tuple[Rule, ...] = WEB_RULES) -> SitePlan:
        return SitePlan(networks=(network,), ports=ports, groups={DEFAULT: DEFAULT_RULES, WEB: web})

    await net.apply(plan(p1, p2, p3))
    await net.apply(plan(p1, p2, p3))  # again: nothing to change, nothing fails

    # The layout: a bridge with the gateway address, persistent taps on it.
    links = {x["ifname"]: x for x in json.loads(sh(["ip", "-n", net.namespace, "-d", "-j", "link",
                                                    "show"]).stdout)}  # fmt: skip
    assert GATEWAY in sh(["ip", "-n", net.namespace, "-4", "addr", "show", network.bridge]).stdout
    for p in (p1, p2, p3):
        tap = links[p.tap]
        assert tap["linkinfo"]["info_kind"] == "tun"
        assert (tap["master"], tap["address"]) == (network.bridge, tap_mac(p.mac))

    for name, p in (("g1", p1), ("g2", p2), ("g3", p3)):
        guest = StandIn(name, p, net, tmp_path)
        guests.append(guest)
        guest.start()
    g1, g2, g3 = guests

    # DHCP hands each guest its port's address and the subnet's gateway.
    for guest in guests:
        assert guest.dhcp() == (guest.port.ips[0], GATEWAY)

    # Members of the default group reach each other; the web port is not a member.
    assert g1.pings(a2) and g2.pings(a1)
    assert not g3.pings(a1)
    assert not g1.pings(a3)
    # Nor is the host (the namespace's gateway address).
    assert not sh(net.exec_argv(["busybox", "ping", "-c", "1", "-W", "1", a1])).returncode == 0

    # A TCP rule on the web group opens its port, to guests and host; deleting it closes it.
    (g3.tmp / "www").mkdir()
    (g3.tmp / "www" / "index.html").write_text("served\n")
    g3.serve("busybox", "httpd", "-f", "-p", "8080", "-h", str(g3.tmp / "www"))
    url = f"http://{a3}:8080/index.html"
    until(lambda: g3.fetches("http://127.0.0.1:8080/index.html"), within=10, what="httpd in g3")
    assert not g1.fetches(url)
    await net.apply_firewall(plan(p1, p2, p3, web=(*WEB_RULES, HTTP_RULE)).firewall)
    assert g1.fetches(url)
    assert host_fetches(net, url)
    await net.apply_firewall(plan(p1, p2, p3).firewall)
    assert not g1.fetches(url)
    assert not host_fetches(net, url)

    # Spoofing: g3 borrows a member's address (g2's) to get into g1; the bridge drops it
    # before g1 sees it. A member with a forged MAC is dropped too.
    dropped = spoofed_sources_dropped(net, p3)
    received = g1.echo_requests_received()
    g3.run("ip", "addr", "add", f"{a2}/32", "dev", "eth0")
    # (g1's MAC given, so the forged packet itself is sent, not a forged ARP request)
    g3.run("ip", "neigh", "replace", a1, "lladdr", p1.mac, "dev", "eth0")
    assert not g3.pings(a1, source=a2)
    assert spoofed_sources_dropped(net, p3) > dropped
    assert g1.echo_requests_received() == received
    g2.run("ip", "link", "set", "dev", "eth0", "address", "fa:16:3e:5e:00:99")
    assert not g2.pings(a1)
    g2.run("ip", "link", "set", "dev", "eth0", "address", p2.mac)
    assert g2.pings(a1)

    # A port that goes loses its tap and its DHCP entry; the others keep working.
    await net.apply(plan(p1, p3))
    remaining = json.loads(sh(["ip", "-n", net.namespace, "-j", "link", "show"]).stdout)
    assert p2.tap not in {x["ifname"] for x in remaining}
    hosts = (state_dir / net.namespace / NETWORK / "hosts").read_text()
    assert p2.mac not in hosts and p1.mac in hosts
    assert not g3.pings(a1)

    # Teardown leaves nothing of the site on the host.
    for guest in guests:
        guest.stop()
    guests.clear()
    await net.teardown()
    assert leftovers(net, state_dir) == []
    await net.teardown()  # and is idempotent


# -- the relay: this file run as a script ------------------------------------------------

_TUNSETIFF = 0x400454CA
_IFF_TAP, _IFF_NO_PI = 0x0002, 0x1000
_CLONE_NEWNET = 0x40000000


def _enter(netns: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), f"setns {netns}")
    os.close(fd)


def _open_tap(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", name.encode(), _IFF_TAP | _IFF_NO_PI))
    return fd


def relay(site_netns: str, tap: str, guest_netns: str, mac: str, ready: str) -> None:
    """Hold ``tap`` (in the site's namespace) as QEMU would, and copy frames between it
    and a new tap ``eth0`` in the guest's namespace that carries the port's MAC."""
    _enter(site_netns)
    port_side = _open_tap(tap)
    _enter(guest_netns)
    guest_side = _open_tap("eth0")
    subprocess.run(["ip", "link", "set", "dev", "eth0", "address", mac, "up"], check=True)
    Path(ready).touch()
    peer = {port_side: guest_side, guest_side: port_side}
    while True:
        readable, _, _ = select.select(list(peer), [], [], 1.0)
        for fd in readable:
            os.write(peer[fd], os.read(fd, 65536))


if __name__ == "__main__":
    relay(*sys.argv[1:6])
