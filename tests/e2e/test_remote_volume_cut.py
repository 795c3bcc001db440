"""A cut of the WAN link while a guest in one site writes to a volume of another, through
the real ``openstack`` CLI (issue #15: "a guest writing and fsync'ing through the cut
loses nothing acknowledged, checked after heal").

Berlin runs guests (qemu driver, its own agent, TCG), Paris holds the volume; the two
are a fleet behind the WAN emulator (50 ms RTT for their API calls). Paris's volume
exports listen on a fixed range of ports (``volume_export_ports``) of 127.0.0.1 and
are advertised at ``EXPORT_HOST`` (``volume_export_host``), where a link of the same
emulator listens in front of each port of the range and forwards to the export: the
guest's NBD traffic (TLS-PSK, end to end) crosses the emulated WAN and nothing else.

A Berlin guest writes a Paris volume, 64 KiB blocks each with fsync, and acknowledges
each on its console. Once a few are acknowledged, the links of the exports are cut
(``Wan.cut_link``, mode ``stall``: a blackholed route, nothing crosses either way, the
export keeps running): the guest's acknowledgements stop, for as long as the cut lasts
(read several times over ``CUT_S``), and no write fails. Then the links heal: the
stalled NBD connection resumes, the guest writes the rest, and every block it
acknowledged (before the cut, during it, after it) is on Paris's disk, no write failed
(``EIO``), the volume detaches, is ``available`` at Paris, and no export is left.
The same volume's successor sees a cut that resets every connection instead (``reset``,
a rejecting firewall): QEMU's NBD client reconnects through the link once it heals, and
nothing acknowledged is lost either.

Every wait is bounded (``until``); the sites, Berlin's agent, guest, namespace and
/run directory, Paris's export daemons and the emulator's links are removed at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from qemu_site import built_guest_image, host_ready
from volume_guest import BLOCKS, MIB, acknowledged, disk_watcher, lost_blocks

from edgefed.testkit.agents import host_json
from edgefed.testkit.fleet_process import ProcessFleet
from edgefed.testkit.osc import OpenStackCLI
from edgefed.testkit.process import SiteProcess, pid_alive
from edgefed.testkit.qemu_site import qemu_fleet
from edgefed.testkit.wait import until
from edgefed.wan import LinkProfile, WanLink

TAG = f"rc{os.getpid()}"
BERLIN, PARIS = f"B{TAG}", f"P{TAG}"
BOOT = 240.0  # seconds a TCG guest may take to boot on a loaded 2-core machine
RTT_MS = 50.0
EXPORT_HOST = "127.0.0.3"  # Paris advertises its exports here; their links listen here
EXPORT_PORT_COUNT = 2
# Below the kernel's ephemeral range; where in it depends on the pid (concurrent runs).
EXPORT_PORT_LOW, EXPORT_PORT_HIGH = 22000, 32000
CUT_S = 8.0  # the cut lasts at least this long: many of the guest's pauses between blocks
NBD_TOOLS = ("ip", "nft", "dnsmasq", "qemu-system-x86_64", "qemu-img", "qemu-storage-daemon")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not host_ready(NBD_TOOLS), reason="needs root, QEMU and its storage daemon"),
]


def _free_on_both(port: int) -> bool:
    for host in ("127.0.0.1", EXPORT_HOST):
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                return False
    return True


def export_ports(count: int = EXPORT_PORT_COUNT) -> range:
    """``count`` consecutive ports free on 127.0.0.1 (the exports) and on ``EXPORT_HOST``
    (their links)."""
    slots = (EXPORT_PORT_HIGH - EXPORT_PORT_LOW) // count
    for i in range(slots):
        start = EXPORT_PORT_LOW + (os.getpid() + i) % slots * count
        ports = range(start, start + count)
        if all(_free_on_both(p) for p in ports):
            return ports
    raise RuntimeError("no free range of ports for Paris's exports")


def nbd_link(port: int) -> str:
    """The emulator's name (its ``server``) for the link in front of an export port."""
    return f"{PARIS}/nbd:{port}"


@pytest.fixture(scope="module")
def guest_disk() -> Path:
    return built_guest_image().disk


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ProcessFleet, range]]:
    """Berlin (qemu) and Paris behind links of ``RTT_MS``, and one more link per port of
    Paris's exports; everything removed on exit."""
    ports = export_ports()
    paris = (f'volume_export_host = "{EXPORT_HOST}"\n'
             f'volume_export_ports = "{ports.start}-{ports.stop - 1}"\n')  # fmt: skip
    with qemu_fleet(tmp_path_factory.mktemp("remote-volume-cut"), f"test-{TAG}", {BERLIN: ""},
                    others={PARIS: paris}, rtt_ms=RTT_MS) as f:  # fmt: skip
        for port in ports:  # removed with the emulator
            f.wan.add_link(
                server=nbd_link(port),
                target=("127.0.0.1", port),
                profile=LinkProfile(rtt_ms=RTT_MS),
                listen_host=EXPORT_HOST,
                listen_port=port,
            )
        yield f, ports


def clis(berlin: SiteProcess, paris: SiteProcess) -> tuple[OpenStackCLI, OpenStackCLI]:
    """The ``openstack`` CLI at Berlin and at Paris (regions are sites)."""
    osc = OpenStackCLI(auth_url=berlin.auth_url, password=berlin.password, region=BERLIN,
                       timeout=240)  # fmt: skip
    at_paris = OpenStackCLI(auth_url=paris.auth_url, password=paris.password, region=PARIS,
                            timeout=120)  # fmt: skip
    return osc, at_paris


def nbd_servers(berlin: SiteProcess) -> set[tuple[str, int]]:
    """Where Berlin's guests' NBD disks connect (their launch plans, ``guest.json``)."""
    found = set()
    for record in (berlin.data_dir / "agent" / "qemu" / "guests").glob("*/guest.json"):
        for disk in json.loads(record.read_text()).get("volumes", []):
            if disk.get("nbd"):
                found.add((disk["nbd"]["host"], int(disk["nbd"]["port"])))
    return found


def held_through_the_cut(console: Callable[[], str], volume: str) -> dict[int, str]:
    """The guest's acknowledgements once the cut holds them: they settle (a block whose
    fsync was answered before the cut may still be printed), then nothing new is
    acknowledged over at least four console reads and ``CUT_S`` from the cut."""
    cut_at = time.monotonic()
    seen: list[dict[int, str]] = []

    def settled() -> bool:
        seen.append(acknowledged(console(), volume))
        return len(seen) >= 2 and seen[-1] == seen[-2]

    until(settled, within=60, every=0.5, what="the guest's acknowledgements settled in the cut")
    frozen, reads = seen[-1], [0]

    def still_held() -> bool:
        now = acknowledged(console(), volume)
        new = sorted(set(now) - set(frozen))
        assert not new, f"blocks {new} acknowledged while the NBD link was cut"
        reads[0] += 1
        return reads[0] >= 4 and time.monotonic() - cut_at >= CUT_S

    until(still_held, within=120, every=1, what="the cut held the guest's writes")
    return frozen


def test_a_guest_writing_through_a_cut_loses_nothing_acknowledged(fleet, guest_disk, tmp_path):
    f, ports = fleet
    berlin, paris = f[BERLIN], f[PARIS]
    links: dict[int, WanLink] = {port: f.wan.link(server=nbd_link(port)) for port in ports}
    osc, at_paris = clis(berlin, paris)
    scoped = ("--os-scope", f"{{volume: {PARIS}}}")
    exports = paris.data_dir / "volumes" / "exports"
    image = osc.json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                     "--file", str(guest_disk), "--public", "tiny")["id"]  # fmt: skip
    osc.run("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1", "r.tiny")
    until(lambda: host_json(berlin, f"{BERLIN.lower()}-local")["availability"] == "available",
          within=60, what="Berlin's agent enrolled")  # fmt: skip
    # A second between two blocks: the cut falls within the writes.
    (tmp_path / "writer.sh").write_text(disk_watcher("write", pause=1.0))
    writer = osc.json("server", "create", "--image", image, "--flavor", "r.tiny", "--nic", "none",
                      "--user-data", str(tmp_path / "writer.sh"), "writer")["id"]  # fmt: skip

    def console() -> str:
        return osc.run("console", "log", "show", writer).stdout

    def active() -> bool:
        shown = osc.json("server", "show", writer)
        assert shown["status"] != "ERROR", shown.get("fault")
        return shown["status"] == "ACTIVE"

    until(active, within=BOOT, every=1, what="writer ACTIVE")
    until(lambda: "EDGEFED-GUEST ready" in console(), within=BOOT, every=1, what="writer booted")

    for mode in ("stall", "reset"):
        volume = at_paris.json("volume", "create", "--size", "1", f"journal-{mode}")["id"]
        sent = {p: link.stats.bytes_up for p, link in links.items()}
        osc.run(*scoped, "server", "add", "volume", writer, volume)
        [export] = list(exports.iterdir())
        port = int((export / "port").read_text())
        assert port in ports  # one of the range, behind its link
        assert nbd_servers(berlin) == {(EXPORT_HOST, port)}  # the guest goes to the link
        until(lambda: len(acknowledged(console(), volume)) >= 3, within=120, every=0.5,
              what="the guest writing the volume")  # fmt: skip
        connected = links[port].stats.connections
        assert connected >= 1 and links[port].stats.bytes_up > sent[port]

        cut_at = time.monotonic()
        for p in ports:  # both directions of every export's link; the export keeps running
            f.wan.cut_link(server=nbd_link(p), mode=mode)
        try:
            frozen = held_through_the_cut(console, volume)
            assert len(frozen) < BLOCKS, "the guest finished before the cut: nothing was cut"
            assert pid_alive(int((export / "qsd.pid").read_text()))  # not the export stopped
        finally:
            for p in ports:
                f.wan.heal_link(server=nbd_link(p))
        healed_at = time.monotonic()

        done = f"VOL-write-{volume[:20]}-"
        until(lambda: done in console(), within=240, every=1, what="the writes resumed")
        text = console()
        print(f"{mode}: {len(frozen)} blocks acknowledged before the cut, held "
              f"{healed_at - cut_at:.1f} s, done {time.monotonic() - healed_at:.1f} s after "
              f"the heal; connections through the link: {connected} before the cut, "
              f"{links[port].stats.connections} after")  # fmt: skip
        if mode == "stall":  # the guest's NBD connection survived the cut
            assert links[port].stats.connections == connected
        else:  # reset: QEMU's NBD client connected again through the healed link
            assert links[port].stats.connections > connected
        acks = acknowledged(text, volume)
        assert set(acks) == set(range(BLOCKS)), f"acknowledged: {sorted(acks)}"
        assert f"EIO-{volume[:20]}" not in text
        raw = paris.data_dir / "volumes" / f"{volume}.raw"
        assert lost_blocks(acks, raw) == []  # every acknowledged block is on Paris's disk
        with open(raw, "rb") as file:  # and the MiB the guest read back after its writes
            assert hashlib.sha256(file.read(MIB)).hexdigest() == text.split(done, 1)[1][:64]
        assert links[port].stats.bytes_up - sent[port] > MIB  # the writes crossed the link

        osc.run(*scoped, "server", "remove", "volume", writer, volume)
        shown = at_paris.json("volume", "show", volume)
        assert shown["status"] == "available" and shown["attachments"] == []
        assert not list(exports.glob("*"))  # no export left
        assert nbd_servers(berlin) == set()
