"""A guest in one site writes to a volume of another, through the real ``openstack``
CLI: Berlin runs guests (qemu driver, its own agent, TCG), Paris holds the volume, the
two are a fleet behind the WAN emulator (50 ms RTT for their API calls).

``openstack --os-scope '{volume: Paris}' server add volume`` at Berlin attaches Paris's
volume to Berlin's guest as an NBD export over TLS that Paris made for that
attachment; the guest writes 1 MiB with fsync and prints its sha256, which Paris's
file holds; ``volume show`` at Paris says where the volume is attached; the volume
cannot be deleted while attached; ``server remove volume`` releases it at Paris. Then
Paris is killed (site and export) while the guest writes another volume, and started
again: the guest's writes resume and every block it acknowledged is on Paris's disk.
A guest with a port on a Berlin network, whose QEMU runs in Berlin's network namespace,
writes Paris's volume as well, through the unix socket Berlin's agent relays.
Paris runs no QEMU guests: ``openstack server relocate --site Paris`` is a 400 saying so.
"""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from qemu_site import built_guest_image, host_ready
from volume_guest import BLOCKS, MIB, acknowledged, disk_watcher, lost_blocks

from edgefed.testkit.agents import host_json
from edgefed.testkit.fleet_process import ProcessFleet
from edgefed.testkit.osc import OpenStackCLI
from edgefed.testkit.process import SiteProcess
from edgefed.testkit.qemu_site import qemu_fleet
from edgefed.testkit.wait import until

TAG = f"rv{os.getpid()}"
BERLIN, PARIS = f"B{TAG}", f"P{TAG}"
BOOT = 240.0


NBD_TOOLS = ("ip", "nft", "dnsmasq", "qemu-system-x86_64", "qemu-img", "qemu-storage-daemon")


pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not host_ready(NBD_TOOLS), reason="needs root, QEMU and its storage daemon"),
]


@pytest.fixture(scope="module")
def guest_disk() -> Path:
    return built_guest_image().disk


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessFleet]:
    paris = 'volume_export_host = "127.0.0.1"\n'
    with qemu_fleet(tmp_path_factory.mktemp("remote-volumes"), f"test-{TAG}", {BERLIN: ""},
                    others={PARIS: paris}, rtt_ms=50.0) as f:  # fmt: skip
        yield f


def clis(berlin: SiteProcess, paris: SiteProcess) -> tuple[OpenStackCLI, OpenStackCLI]:
    """The ``openstack`` CLI at Berlin and at Paris: each picks its own site's endpoints
    from the fleet's catalog (regions are sites)."""
    osc = OpenStackCLI(auth_url=berlin.auth_url, password=berlin.password, region=BERLIN,
                       timeout=240)  # fmt: skip
    at_paris = OpenStackCLI(auth_url=paris.auth_url, password=paris.password, region=PARIS,
                            timeout=120)  # fmt: skip
    return osc, at_paris


def test_a_guest_in_berlin_writes_to_a_volume_of_paris(fleet, guest_disk, tmp_path):
    berlin, paris = fleet[BERLIN], fleet[PARIS]
    osc, at_paris = clis(berlin, paris)
    scoped = ("--os-scope", f"{{volume: {PARIS}}}")
    image = osc.json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                     "--file", str(guest_disk), "--public", "tiny")["id"]  # fmt: skip
    osc.run("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1", "r.tiny")
    until(lambda: host_json(berlin, f"{BERLIN.lower()}-local")["availability"] == "available",
          within=60, what="Berlin's agent enrolled")  # fmt: skip
    # A second between two blocks: the crash below falls within the writes.
    (tmp_path / "writer.sh").write_text(disk_watcher("write", pause=1.0))
    writer = osc.json("server", "create", "--image", image, "--flavor", "r.tiny", "--nic", "none",
                      "--user-data", str(tmp_path / "writer.sh"), "writer")["id"]  # fmt: skip
    volume = at_paris.json("volume", "create", "--size", "1", "shop-db")["id"]

    def console() -> str:
        return osc.run("console", "log", "show", writer).stdout

    def active() -> bool:
        shown = osc.json("server", "show", writer)
        assert shown["status"] != "ERROR", shown.get("fault")
        return shown["status"] == "ACTIVE"

    until(active, within=BOOT, every=1, what="writer ACTIVE")
    until(lambda: "EDGEFED-GUEST ready" in console(), within=BOOT, every=1, what="writer booted")

    # Paris runs no QEMU guests (the fake driver): a move there is refused, and said why.
    moved = osc.run("server", "relocate", "--site", PARIS, writer, check=False)
    assert moved.returncode != 0 and "HTTP 400" in moved.stderr
    assert f"Site {PARIS} runs fake guests; this server needs a QEMU hypervisor" in moved.stderr
    assert osc.json("server", "show", writer)["status"] == "ACTIVE"

    # Not without the scope: Berlin has no such volume.
    refused = osc.run("server", "add", "volume", writer, volume, check=False)
    assert refused.returncode != 0
    osc.run(*scoped, "server", "add", "volume", writer, volume)
    shown = at_paris.json("volume", "show", volume)
    assert shown["status"] == "in-use"
    assert [(a["server_id"], a["host_name"]) for a in shown["attachments"]] == [
        (writer, f"{BERLIN}/{BERLIN.lower()}-local")
    ]  # Paris says where its volume is attached: the site, the host and the server

    prefix = f"VOL-write-{volume[:20]}-"
    until(lambda: prefix in console(), within=120, every=1, what="the guest wrote the volume")
    written = console().split(prefix, 1)[1][:64]
    with open(paris.data_dir / "volumes" / f"{volume}.raw", "rb") as f:
        assert hashlib.sha256(f.read(MIB)).hexdigest() == written  # on Paris's disk

    deleted = at_paris.run("volume", "delete", volume, check=False)
    assert deleted.returncode != 0 and "in-use" in deleted.stderr

    osc.run(*scoped, "server", "remove", "volume", writer, volume)
    shown = at_paris.json("volume", "show", volume)
    assert shown["status"] == "available" and shown["attachments"] == []
    exports = paris.data_dir / "volumes" / "exports"
    assert not list(exports.glob("*"))  # the grant is gone with the attachment

    # Paris crashes while the guest writes (kill -9 of the site and of the export's
    # daemon: the guest's NBD connection drops); once Paris is back, its export runs
    # again with the same key, the guest's I/O resumes, nothing acknowledged is lost.
    journal = at_paris.json("volume", "create", "--size", "1", "journal")["id"]
    osc.run(*scoped, "server", "add", "volume", writer, journal)
    until(lambda: 2 in acknowledged(console(), journal), within=120, every=0.5,
          what="the guest writing the journal")  # fmt: skip
    [export] = list(exports.iterdir())
    paris.kill()
    os.kill(int((export / "qsd.pid").read_text()), signal.SIGKILL)
    before = acknowledged(console(), journal)
    assert len(before) < BLOCKS, "the guest finished before the crash: nothing was cut"
    paris.start()
    done = f"VOL-write-{journal[:20]}-"
    until(lambda: done in console(), within=180, every=1, what="the writes resumed")
    text = console()
    acks = acknowledged(text, journal)
    assert set(acks) == set(range(BLOCKS)) and f"EIO-{journal[:20]}" not in text
    assert lost_blocks(acks, paris.data_dir / "volumes" / f"{journal}.raw") == []
    osc.run(*scoped, "server", "remove", "volume", writer, journal)
    assert at_paris.json("volume", "show", journal)["status"] == "available"


def test_a_guest_with_a_nic_in_berlin_writes_to_a_volume_of_paris(fleet, guest_disk, tmp_path):
    """A guest with a port runs its QEMU in Berlin's network namespace, from where
    Paris's export (127.0.0.1) is not reachable: Berlin's agent relays a unix socket in
    the guest's directory to it (docs/volume.md), and the guest writes Paris's volume."""
    berlin, paris = fleet[BERLIN], fleet[PARIS]
    osc, at_paris = clis(berlin, paris)
    scoped = ("--os-scope", f"{{volume: {PARIS}}}")
    image = osc.json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                     "--file", str(guest_disk), "--public", "tiny-nic")["id"]  # fmt: skip
    osc.run("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1", "r.nic")
    net = osc.json("network", "create", "rv-net")["id"]
    osc.run("subnet", "create", "--network", net, "--subnet-range", "10.79.0.0/24",
            "--gateway", "10.79.0.1", "rv-subnet")  # fmt: skip
    until(lambda: host_json(berlin, f"{BERLIN.lower()}-local")["availability"] == "available",
          within=60, what="Berlin's agent enrolled")  # fmt: skip
    (tmp_path / "writer.sh").write_text(disk_watcher("write"))
    server = osc.json("server", "create", "--image", image, "--flavor", "r.nic", "--nic",
                      f"net-id={net}", "--user-data", str(tmp_path / "writer.sh"),
                      "nic-writer")["id"]  # fmt: skip

    def console() -> str:
        return osc.run("console", "log", "show", server).stdout

    def active() -> bool:
        shown = osc.json("server", "show", server)
        assert shown["status"] != "ERROR", shown.get("fault")
        return shown["status"] == "ACTIVE"

    until(active, within=BOOT, every=1, what="nic-writer ACTIVE")
    until(lambda: "EDGEFED-GUEST ready" in console(), within=BOOT, every=1,
          what="nic-writer booted")  # fmt: skip
    assert "net eth0 10.79.0." in console()  # its NIC, on Berlin's network

    volume = at_paris.json("volume", "create", "--size", "1", "nic-db")["id"]
    osc.run(*scoped, "server", "add", "volume", server, volume)
    prefix = f"VOL-write-{volume[:20]}-"
    until(lambda: prefix in console(), within=120, every=1, what="the guest wrote the volume")
    written = console().split(prefix, 1)[1][:64]
    with open(paris.data_dir / "volumes" / f"{volume}.raw", "rb") as f:
        assert hashlib.sha256(f.read(MIB)).hexdigest() == written  # on Paris's disk
    osc.run(*scoped, "server", "remove", "volume", server, volume)
    assert at_paris.json("volume", "show", volume)["status"] == "available"
    assert not list((paris.data_dir / "volumes" / "exports").glob("*"))
