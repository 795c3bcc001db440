"""A site with three real guests is drained through the ``edgefed`` CLI, and both
sites are killed with -9 in the middle of the moves (docs/relocation.md).

Berlin and Paris run the qemu driver with their own agents and host networks (TCG
guests of the tiny image), a fleet behind the WAN emulator (50 ms RTT). Berlin runs
three guests whose user data wrote a file of known content onto their boot disks; one
has a Berlin volume of known data attached, which it reads. ``edgefed site drain
Berlin --to Paris`` starts the drain; Berlin sends each disk in chunks of 1 MiB at
2 MiB/s, two moves at a time. While the first disks are on the wire Berlin is killed
with -9 and started again, then, while a disk is on the wire again, Paris. ``edgefed
site drain Berlin --watch`` then follows the drain to its end.

What a user would notice is checked: Berlin refuses a new server while it drains; the
guest not yet moving kept running at Berlin in the same QEMU through Berlin's kill; no
guest ever ran at both sites (a watcher samples the QEMU processes throughout); every
guest ends ACTIVE at Paris, same id, booted from its own disk (boot count 2, the file
read back with the sha256 it was written with); the moves resumed rather than started
over (what Berlin's journal counts as sent never goes back); Berlin's alarm says it is
drained; nothing of the guests is left at Berlin but the volume, which stayed there
(a drain leaves volumes where they are) and which the guest reads again from Paris,
over Berlin's export. An undrain opens Berlin again.

Every wait is a bounded poll (``until``); the sites, their agents, guests, namespaces,
/run directories and the emulator's links are removed at the end.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from qemu_site import built_guest_image, host_ready
from relocation_guest import MARKER_SHA, USER_DATA, qemu_pid, until_value
from volume_guest import MIB, disk_watcher

from edgefed.testkit.agents import host_json
from edgefed.testkit.fleet_process import ProcessFleet, password_token
from edgefed.testkit.osc import OpenStackCLI
from edgefed.testkit.qemu_site import qemu_fleet
from edgefed.testkit.wait import until

TAG = f"dr{os.getpid()}"
BERLIN, PARIS = f"B{TAG}", f"P{TAG}"
BOOT = 240.0  # seconds a TCG guest may take to boot on a loaded 2-core machine
CHUNK = 1 << 20
RATE = 2 << 20  # bytes per second of each move: a disk (~13 MB) takes several seconds
GUESTS = ("till", "camera", "door")

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not host_ready(), reason="needs root, QEMU, ip, nft, dnsmasq, tun"),
]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessFleet]:
    slow = f"relocation_chunk_bytes = {CHUNK}\nrelocation_bytes_per_second = {RATE}\n"
    with qemu_fleet(tmp_path_factory.mktemp("drain"), f"test-{TAG}",
                    {BERLIN: slow, PARIS: ""}, rtt_ms=50.0) as f:  # fmt: skip
        yield f


def edgefed(
    fleet: ProcessFleet, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """``edgefed site …`` against Berlin, as its admin (a fresh token each time: Berlin
    may have been restarted since the last one)."""
    url = fleet[BERLIN].url
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    argv = [*args[:2], "--site-url", url, "--os-token", password_token(url), *args[2:]]
    return subprocess.run([sys.executable, "-m", "edgefed.cli.main", *argv], capture_output=True,
                          text=True, timeout=timeout, env=env)  # fmt: skip


def drain(fleet: ProcessFleet) -> dict[str, Any]:
    """Berlin's drain as its API shows it."""
    url = fleet[BERLIN].url
    r = httpx.get(f"{url}/compute/v2.1/os-edge/drain", timeout=30,
                  headers={"X-Auth-Token": password_token(url)})  # fmt: skip
    assert r.status_code == 200, r.text
    shown: dict[str, Any] = r.json()["drain"]
    return shown


class TwiceWatcher:
    """Samples where each guest's QEMU runs until stopped; records any sample with a
    guest running at both sites."""

    def __init__(self, fleet: ProcessFleet, servers: list[str]) -> None:
        self.fleet, self.servers = fleet, servers
        self.twice: list[str] = []
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for _ in range(4000):  # bounded: 0.25 s apart, well past the test's timeout
            for server in self.servers:
                at = [qemu_pid(self.fleet[s], server) for s in (BERLIN, PARIS)]
                if None not in at:
                    self.twice.append(f"{server} runs at both sites: {at}")
            self.samples += 1
            if self._stop.wait(0.25):
                return

    def __enter__(self) -> TwiceWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def test_a_drain_survives_kill_9_of_either_site(fleet: ProcessFleet, tmp_path: Path) -> None:
    berlin, paris = fleet[BERLIN], fleet[PARIS]
    osc = OpenStackCLI(auth_url=berlin.auth_url, password=berlin.password, region=BERLIN,
                       timeout=120)  # fmt: skip
    at_paris = OpenStackCLI(auth_url=paris.auth_url, password=paris.password, region=PARIS,
                            timeout=120)  # fmt: skip
    image = osc.json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                     "--file", str(built_guest_image().disk), "--public", "tiny")["id"]  # fmt: skip
    (tmp_path / "marker.sh").write_text(USER_DATA + disk_watcher("read").split("\n", 1)[1])
    osc.run("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1", "d.tiny")
    for site in (berlin, paris):
        until(lambda site=site: host_json(site, f"{site.name.lower()}-local")["availability"]
              == "available", within=60, what=f"{site.name}'s agent enrolled")  # fmt: skip
    ids = {
        name: osc.json("server", "create", "--image", image, "--flavor", "d.tiny", "--nic",
                       "none", "--user-data", str(tmp_path / "marker.sh"), name)["id"]
        for name in GUESTS
    }  # fmt: skip
    at_paris.run("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1", "d.tiny")

    def console(cli: OpenStackCLI, server: str) -> str:
        return cli.run("console", "log", "show", server).stdout

    for name, server in ids.items():
        until(lambda server=server: f"MARKER-WROTE-{MARKER_SHA}" in console(osc, server),
              within=BOOT, every=1, what=f"{name} booted and wrote its marker")  # fmt: skip

    # The door's log: a Berlin volume of known data, attached to it at Berlin.
    log = osc.json("volume", "create", "--size", "1", "door-log")["id"]
    until(lambda: osc.json("volume", "show", log)["status"] == "available", within=60,
          what="the volume available")  # fmt: skip
    data = os.urandom(MIB)
    with open(berlin.data_dir / "volumes" / f"{log}.raw", "r+b") as f:
        f.write(data)
        os.fsync(f.fileno())
    read = f"VOL-read-{log[:20]}-{hashlib.sha256(data).hexdigest()}"
    osc.run("server", "add", "volume", ids["door"], log)
    until(lambda: read in console(osc, ids["door"]), within=120, every=1,
          what="the door reading its log at Berlin")  # fmt: skip

    with TwiceWatcher(fleet, list(ids.values())) as watcher:
        started = edgefed(fleet, "site", "drain", BERLIN, "--to", PARIS)
        assert started.returncode == 0, started.stderr + started.stdout
        assert f"{BERLIN}: draining to {PARIS}, 0 of 3 moved" in started.stdout
        refused = osc.run("server", "create", "--image", image, "--flavor", "d.tiny", "--nic",
                          "none", "latecomer", check=False)  # fmt: skip
        assert refused.returncode != 0
        assert f"Site {BERLIN} is being drained" in refused.stderr and "409" in refused.stderr

        # 1. Berlin killed while disks are on the wire.
        def sending(shown: dict[str, Any]) -> list[dict[str, Any]]:
            return [s for s in shown["servers"] if s["phase"] == "sending" and s["bytes_done"]
                    and s["bytes_done"] < s["bytes_total"] // 2]  # fmt: skip

        def resumed(before: list[dict[str, Any]]) -> None:
            """Each move on the wire at a kill goes on from where it was: what the
            journal counts as sent (acknowledged by Paris's fsync) never goes back."""
            after = {s["server_id"]: s for s in drain(fleet)["servers"]}
            for entry in before:
                assert after[entry["server_id"]]["bytes_done"] >= entry["bytes_done"], (
                    entry, after[entry["server_id"]])  # fmt: skip

        moving = until_value(lambda: sending(drain(fleet)), within=240, what="a disk on the wire")
        waiting = [s["server_id"] for s in drain(fleet)["servers"] if s["phase"] == "waiting"]
        waiting_qemu = {s: qemu_pid(berlin, s) for s in waiting}
        berlin.kill()
        berlin.restart()
        for server, pid in waiting_qemu.items():  # not moving yet: it ran on, in the same QEMU
            assert pid is not None and qemu_pid(berlin, server) == pid
        resumed(moving)

        # 2. Paris killed while a disk is on the wire again.
        moving = until_value(lambda: sending(drain(fleet)), within=240,
                             what="a disk on the wire again")  # fmt: skip
        paris.kill()
        paris.restart()
        resumed(moving)

        watched = edgefed(fleet, "site", "drain", BERLIN, "--watch", timeout=600)
        assert watched.returncode == 0, watched.stderr + watched.stdout
        assert f"{BERLIN}: drained to {PARIS}, 3 of 3 moved" in watched.stdout
    assert watcher.samples > 20 and watcher.twice == []

    final = drain(fleet)
    assert final["state"] == "drained" and final["moved"] == final["total"] == 3
    for entry in final["servers"]:
        assert (entry["phase"], entry["site"]) == ("done", PARIS)
        assert entry["bytes_done"] == entry["bytes_total"]

    # Every guest at Paris, same id and name, booted again from its own disk.
    for name, server in ids.items():
        until(lambda server=server: at_paris.json("server", "show", server)["status"] == "ACTIVE",
              within=BOOT, every=1, what=f"{name} ACTIVE at Paris")  # fmt: skip
        until(lambda server=server: f"MARKER-FOUND-{MARKER_SHA}" in console(at_paris, server),
              within=BOOT, every=1, what=f"{name} booted at Paris")  # fmt: skip
        text = console(at_paris, server)
        assert f"uuid={server} name={name}" in text and "boot-count=2" in text
        assert qemu_pid(paris, server) is not None and qemu_pid(berlin, server) is None
    assert osc.json("server", "list") == []
    # The door's log stayed at Berlin (a drain leaves volumes where they are) and the
    # door reads it from Paris, over Berlin's export.
    assert read in console(at_paris, ids["door"])
    shown = osc.json("volume", "show", log)
    assert shown["status"] == "in-use"
    assert [(a["server_id"], a["host_name"]) for a in shown["attachments"]] == [
        (ids["door"], f"{PARIS}/relocated")
    ]
    alarms = httpx.get(f"{berlin.url}/edge/v1/alarms?type=site_draining", timeout=30,
                       headers={"X-Auth-Token": password_token(berlin.url)}).json()  # fmt: skip
    [alarm] = [a for a in alarms["alarms"] if a["type"] == "site_draining"]
    assert alarm["reason"].startswith(f"drained to {PARIS}: no guest left")
    qemu_state = berlin.data_dir / "agent" / "qemu"
    assert not [g for g in (qemu_state / "guests").iterdir() if g.name in ids.values()]
    assert not list((berlin.data_dir / "relocations").glob("*"))
    assert not list((paris.data_dir / "relocations").glob("*"))

    undrained = edgefed(fleet, "site", "undrain", BERLIN)
    assert undrained.returncode == 0, undrained.stderr
    again = osc.json("server", "create", "--image", image, "--flavor", "d.tiny", "--nic", "none",
                     "latecomer")  # fmt: skip
    assert again["name"] == "latecomer"
