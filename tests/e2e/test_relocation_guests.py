"""A real guest moves from Berlin to Paris, cold, through the real ``openstack`` CLI
(docs/relocation.md): both sites run the qemu driver with their own host agent and
host network (TCG guests, the tiny guest image), and are a fleet behind the WAN
emulator (50 ms RTT for their API calls).

Berlin refuses, with a 4xx the CLI shows, a move to a site the fleet does not have,
and one of a server whose flavor Paris lacks; those guests keep running at Berlin and
nothing is recorded. A guest whose user data wrote a file of known content onto its
boot disk (and synced it) is moved with ``openstack server relocate --site Paris
--wait``; Berlin sends its disk in chunks of 1 MiB at 1 MiB/s, and the link in front
of Paris is cut (every connection reset) in the middle of the transfer, until Berlin
has seen the cut, then healed: the move goes on where Paris's bytes end and completes.
Then the server, with the same id, is ACTIVE at Paris, where the guest boots again
from the moved disk (its boot count goes on, the file reads back with the sha256 it
was written with, it has its fixed IP on Paris's network of the same name); at Berlin
the ``openstack server show`` fails (the CLI hides the API's 404, which says where
the server went), its journal says ``done`` with every byte sent, and Berlin's QEMU
process, guest directory, snapshot and ports for it are gone.

The guest whose flavor Paris lacked moves too once Paris has the flavor, mild
(``--mode mild``): a ticker its user data started writes a count to its boot disk and
its console every second; while Berlin sends its frozen disk, the guest is MIGRATING
and runs on in the same QEMU, its console ticking; then it is stopped, only what it
wrote since goes, and at Paris it boots from the joined disk: the marker file as
written before the move, and the last tick it wrote at Berlin, after the freeze.

Every wait is a bounded poll (``until``); the sites, their agents, guests, namespaces,
/run directories and the emulator's links are removed at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from qemu_site import built_guest_image, host_ready
from relocation_guest import MARKER_SHA, USER_DATA, qemu_pid, until_value

from edgefed.testkit.agents import host_json
from edgefed.testkit.fleet_process import ProcessFleet
from edgefed.testkit.osc import OpenStackCLI, openstack_binary
from edgefed.testkit.process import SiteProcess, pid_alive
from edgefed.testkit.qemu_site import qemu_fleet
from edgefed.testkit.wait import until

TAG = f"rl{os.getpid()}"
BERLIN, PARIS = f"B{TAG}", f"P{TAG}"
BOOT = 240.0  # seconds a TCG guest may take to boot on a loaded 2-core machine
CHUNK = 1 << 20  # Berlin sends the disk (~13 MB) in chunks of 1 MiB, at 1 MiB/s
NET, SUBNET, GATEWAY, IP = "reloc-net", "10.81.0.0/24", "10.81.0.1", "10.81.0.17"

TICKS = "/boot/relocation-ticks"  # the ticker's last count, on the boot disk
# The marker as USER_DATA does, then: the last count a previous boot's ticker wrote, and
# a ticker counting on from it each second, onto the boot disk (synced) then the console.
TICKING = (
    USER_DATA
    + f'if [ -f {TICKS} ]; then echo "TICKS-FOUND-$(cat {TICKS})"; fi\n'
    + "(\n"
    + f"  n=$(cat {TICKS} 2>/dev/null || echo 0)\n"
    + "  while true; do\n"
    + "    n=$((n + 1))\n"
    + f"    echo $n > {TICKS}.new && mv {TICKS}.new {TICKS} && sync\n"
    + '    echo "TICK-$n"\n'
    + "    sleep 1\n"
    + "  done\n"
    + ") &\n"
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not host_ready(), reason="needs root, QEMU, ip, nft, dnsmasq, tun"),
]


@pytest.fixture(scope="module")
def guest_disk() -> Path:
    return built_guest_image().disk


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessFleet]:
    """Berlin and Paris, each with the qemu driver, its agent and its own host network
    directory; Berlin sends relocated disks in small, slow chunks."""
    slow = f"relocation_chunk_bytes = {CHUNK}\nrelocation_bytes_per_second = {CHUNK}\n"
    with qemu_fleet(tmp_path_factory.mktemp("relocation"), f"test-{TAG}",
                    {BERLIN: slow, PARIS: ""}, rtt_ms=50.0) as f:  # fmt: skip
        yield f


def clis(fleet: ProcessFleet) -> tuple[OpenStackCLI, OpenStackCLI]:
    """The ``openstack`` CLI at Berlin and at Paris (each its own region)."""
    berlin, paris = fleet[BERLIN], fleet[PARIS]
    osc = OpenStackCLI(auth_url=berlin.auth_url, password=berlin.password, region=BERLIN,
                       timeout=120)  # fmt: skip
    at_paris = OpenStackCLI(auth_url=paris.auth_url, password=paris.password, region=PARIS,
                            timeout=120)  # fmt: skip
    return osc, at_paris


def api_get(fleet: ProcessFleet, site: str, path: str) -> httpx.Response:
    """The site's API directly, for what the test checks besides the CLI's answers (an
    ``openstack`` command takes seconds to start on a loaded machine)."""
    with fleet.client(site, headers={"X-Auth-Token": fleet.token(site)}) as api:
        return api.get(path)


def console(cli: OpenStackCLI, server: str) -> str:
    return cli.run("console", "log", "show", server).stdout


def relocations(cli: OpenStackCLI, server: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cli.json("server", "relocation", "list", server)
    return found


@pytest.fixture(scope="module")
def guests(fleet: ProcessFleet, guest_disk: Path, tmp_path_factory) -> dict[str, str]:
    """Two guests booting at Berlin at once: ``mover`` (a flavor Paris has too, user
    data writing the marker) and ``stayer`` (a flavor only Berlin has, until the mild
    move; its user data writes the marker and starts the ticker)."""
    osc, at_paris = clis(fleet)
    image = osc.json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                     "--file", str(guest_disk), "--public", "tiny")["id"]  # fmt: skip

    def site_has(cli: OpenStackCLI, site: SiteProcess) -> None:
        """The guest's flavor and network (by name) at ``site``, and its agent enrolled."""
        cli.run("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1", "r.tiny")
        net = cli.json("network", "create", NET)["id"]
        cli.run("subnet", "create", "--network", net, "--subnet-range", SUBNET, "--gateway",
                GATEWAY, f"{NET}-subnet")  # fmt: skip
        until(lambda: host_json(site, f"{site.name.lower()}-local")["availability"]
              == "available", within=60, what=f"{site.name}'s agent enrolled")  # fmt: skip

    site_has(osc, fleet[BERLIN])
    osc.run("flavor", "create", "--vcpus", "1", "--ram", "144", "--disk", "1", "berlin.only")
    scripts = tmp_path_factory.mktemp("relocation-user-data")
    (scripts / "marker.sh").write_text(USER_DATA)
    (scripts / "ticking.sh").write_text(TICKING)
    ids = {}
    for name, flavor, nic, data in (
        ("mover", "r.tiny", f"net-id={NET},v4-fixed-ip={IP}", "marker.sh"),
        ("stayer", "berlin.only", "none", "ticking.sh"),
    ):
        ids[name] = osc.json("server", "create", "--image", image, "--flavor", flavor, "--nic",
                             nic, "--user-data", str(scripts / data), name)["id"]  # fmt: skip
    site_has(at_paris, fleet[PARIS])  # while Berlin's guests boot

    def all_active() -> bool:
        statuses = {s["ID"]: s["Status"] for s in osc.json("server", "list")}
        assert "ERROR" not in statuses.values(), statuses
        return statuses == dict.fromkeys(ids.values(), "ACTIVE")

    until(all_active, within=BOOT, every=1, what="both guests ACTIVE")
    return ids


def test_berlin_refuses_an_unknown_site_and_a_flavor_paris_lacks(fleet, guests):
    osc, _ = clis(fleet)
    mover, stayer = guests["mover"], guests["stayer"]
    pids = {s: qemu_pid(fleet[BERLIN], s) for s in (mover, stayer)}
    assert None not in pids.values()

    unknown = osc.run("server", "relocate", "--site", "Atlantis", mover, check=False)
    assert unknown.returncode != 0
    assert "Unknown site 'Atlantis'" in unknown.stderr and "HTTP 400" in unknown.stderr

    lacking = osc.run("server", "relocate", "--site", PARIS, stayer, check=False)
    assert lacking.returncode != 0
    assert f"Site {PARIS} has no flavor like berlin.only (1 vCPU, 144 MB RAM" in lacking.stderr
    assert "HTTP 400" in lacking.stderr

    # Nothing stopped, nothing recorded: both guests run at Berlin in the same QEMU.
    statuses = {s["ID"]: s["Status"] for s in osc.json("server", "list")}
    assert statuses == {mover: "ACTIVE", stayer: "ACTIVE"}
    assert {s: qemu_pid(fleet[BERLIN], s) for s in (mover, stayer)} == pids
    for site in (BERLIN, PARIS):
        assert api_get(fleet, site, "/compute/v2.1/os-edge/relocations").json() == {
            "relocations": []
        }


def test_a_guest_moves_to_paris_through_a_cut_with_its_disk(fleet, guests):
    osc, at_paris = clis(fleet)
    berlin, paris = fleet[BERLIN], fleet[PARIS]
    mover = guests["mover"]
    until(lambda: "EDGEFED-GUEST ready" in console(osc, mover), within=BOOT, every=1,
          what="the guest booted at Berlin")  # fmt: skip
    text = console(osc, mover)
    assert f"MARKER-WROTE-{MARKER_SHA}" in text and "boot-count=1" in text
    berlin_qemu = qemu_pid(berlin, mover)
    assert berlin_qemu is not None

    argv = [openstack_binary(), "server", "relocate", "--site", PARIS, mover, "--wait",
            "-f", "json"]  # fmt: skip
    with subprocess.Popen(argv, env=osc.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as relocate:  # fmt: skip
        try:
            # The disk goes in chunks: cut the link in front of Paris in the first half.
            def sending() -> dict[str, Any] | None:
                assert relocate.poll() is None, relocate.communicate()
                moves = relocations(osc, mover)  # none until the CLI asked
                if not moves:
                    return None
                [move] = moves
                assert move["phase"] not in ("failed", "aborted"), move
                total = move["bytes_total"] or 0
                return move if 0 < move["bytes_done"] <= total // 2 else None

            until(sending, within=180, every=0.2, what="the disk half sent")
            fleet.wan.cut_link(server=PARIS, mode="reset")
            try:

                def stalled() -> dict[str, Any] | None:
                    [move] = relocations(osc, mover)
                    return move if "(retrying)" in (move["error"] or "") else None

                cut = until_value(stalled, within=60, what="Berlin seeing the cut")
                assert cut["phase"] == "sending" and cut["bytes_done"] < cut["bytes_total"]
                assert cut["bytes_total"] > 4 * CHUNK  # several chunks on either side
                assert osc.json("server", "show", mover)["status"] == "MIGRATING"
            finally:
                fleet.wan.heal_link(server=PARIS)
            out, err = relocate.communicate(timeout=300)
        finally:
            if relocate.poll() is None:
                relocate.kill()
    assert relocate.returncode == 0, err + out
    shown = json.loads(out)
    assert (shown["phase"], shown["site"], shown["server_id"]) == ("done", PARIS, mover)
    assert shown["bytes_done"] == shown["bytes_total"] == cut["bytes_total"]
    progress = err.splitlines()
    print("relocate --wait:", err)
    assert progress[-1].startswith("done") and any(line.startswith("sending ") for line in progress)

    # Paris runs it: the same id, booted again from the moved disk.
    shown = at_paris.json("server", "show", mover)
    assert (shown["id"], shown["name"], shown["status"]) == (mover, "mover", "ACTIVE")
    assert shown["OS-EXT-SRV-ATTR:host"] == f"{PARIS.lower()}-local"
    assert IP in str(shown["addresses"])  # Paris's network of that name, the same fixed IP
    image_id = str(shown["image"]).rsplit("(", 1)[-1].rstrip(")")  # "name (id)"
    image = api_get(fleet, PARIS, f"/image/v2/images/{image_id}").json()
    assert (image["disk_format"], image["status"], image["visibility"]) == (
        "qcow2", "active", "private")  # fmt: skip
    assert image["os_hidden"] is True and image["instance_uuid"] == mover
    listed = api_get(fleet, PARIS, "/image/v2/images").json()["images"]
    assert image_id not in {i["id"] for i in listed}  # hidden
    until(lambda: "EDGEFED-GUEST ready" in console(at_paris, mover), within=BOOT, every=1,
          what="the guest booted at Paris")  # fmt: skip
    text = console(at_paris, mover)
    assert f"uuid={mover} name=mover" in text
    assert "boot-count=2" in text  # Berlin's boot disk, one more boot
    assert f"MARKER-FOUND-{MARKER_SHA}" in text and "MARKER-WROTE" not in text
    assert f"net eth0 {IP}/24 static" in text
    assert qemu_pid(paris, mover) is not None
    [arrived] = relocations(at_paris, mover)  # Paris's side of the move
    assert (arrived["phase"], arrived["site"]) == ("done", BERLIN)

    # Berlin: the guest is gone, its QEMU too, and it says where the server went.
    assert qemu_pid(berlin, mover) is None and not pid_alive(berlin_qemu)
    # Berlin answers its show with a 301 to Paris, which the CLI follows: the server as
    # Paris has it; other requests for it at Berlin are 404s saying where it went.
    shown = osc.json("server", "show", mover)
    assert (shown["id"], shown["status"]) == (mover, "ACTIVE")
    assert shown["OS-EXT-SRV-ATTR:host"] == f"{PARIS.lower()}-local"
    gone = osc.run("server", "stop", mover, check=False)
    assert gone.returncode != 0
    [move] = relocations(osc, mover)
    assert (move["phase"], move["site"], move["error"]) == ("done", PARIS, None)
    assert move["bytes_done"] == move["bytes_total"]
    qemu_state = berlin.data_dir / "agent" / "qemu"
    assert not (qemu_state / "guests" / mover).exists()  # its disk went with its guest
    assert not list((qemu_state / "snapshots").iterdir())
    ports = api_get(fleet, BERLIN, f"/network/v2.0/ports?device_id={mover}").json()
    assert ports == {"ports": []}
    assert not list((berlin.data_dir / "relocations").glob("*"))
    assert not list((paris.data_dir / "relocations").glob("*"))
    assert {s["ID"] for s in osc.json("server", "list")} == {guests["stayer"]}


def console_api(fleet: ProcessFleet, site: str, server: str) -> str:
    """The guest's console by the API (an ``openstack`` command takes seconds to start)."""
    with fleet.client(site, headers={"X-Auth-Token": fleet.token(site)}) as api:
        r = api.post(f"/compute/v2.1/servers/{server}/action",
                     json={"os-getConsoleOutput": {"length": 50}})  # fmt: skip
        r.raise_for_status()
        return str(r.json()["output"])


def last_tick(text: str) -> int:
    ticks = [int(w[5:]) for w in text.split() if w.startswith("TICK-") and w[5:].isdigit()]
    return ticks[-1] if ticks else 0


def test_a_guest_moves_mild_and_runs_on_while_its_disk_goes(fleet, guests):
    osc, at_paris = clis(fleet)
    berlin = fleet[BERLIN]
    mild = guests["stayer"]
    at_paris.run("flavor", "create", "--vcpus", "1", "--ram", "144", "--disk", "1", "berlin.only")
    until(lambda: last_tick(console_api(fleet, BERLIN, mild)) > 0, within=BOOT, every=1,
          what="the ticker at Berlin")  # fmt: skip
    assert f"MARKER-WROTE-{MARKER_SHA}" in console(osc, mild)
    pid = qemu_pid(berlin, mild)
    assert pid is not None

    def journal() -> dict[str, Any] | None:
        found = api_get(fleet, BERLIN, f"/compute/v2.1/servers/{mild}/os-edge-relocations")
        moves = found.json()["relocations"] if found.status_code == 200 else []
        assert not moves or moves[-1]["phase"] not in ("failed", "aborted"), moves
        return moves[-1] if moves else None

    argv = [openstack_binary(), "server", "relocate", "--site", PARIS, "--mode", "mild", mild,
            "--wait", "-f", "json"]  # fmt: skip
    with subprocess.Popen(argv, env=osc.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as relocate:  # fmt: skip
        try:
            # Its frozen disk goes at 1 MiB/s while the guest runs on, ticking.
            def sending(at_least: int) -> dict[str, Any] | None:
                assert relocate.poll() is None, relocate.communicate()
                move = journal()
                if move is None or move["phase"] != "sending-base":
                    assert move is None or move["phase"] in ("snapshotting", "naming"), move
                    return None
                return move if move["bytes_done"] >= at_least else None

            first = until_value(lambda: sending(CHUNK), within=120, what="the disk going")
            ticked = last_tick(console_api(fleet, BERLIN, mild))
            shown = api_get(fleet, BERLIN, f"/compute/v2.1/servers/{mild}").json()["server"]
            assert (shown["status"], shown["OS-EXT-STS:power_state"]) == ("MIGRATING", 1)
            later = until_value(lambda: sending(first["bytes_done"] + 3 * CHUNK), within=60,
                                what="three more chunks of the disk")  # fmt: skip
            assert later["phase"] == "sending-base" and later["bytes_done"] < later["bytes_total"]
            running_tick = last_tick(console_api(fleet, BERLIN, mild))
            assert running_tick > ticked  # the guest ran on while its disk went
            assert qemu_pid(berlin, mild) == pid  # in the same QEMU
            out, err = relocate.communicate(timeout=300)
        finally:
            if relocate.poll() is None:
                relocate.kill()
    assert relocate.returncode == 0, err + out
    print("relocate --mode mild --wait:", err)
    done = json.loads(out)
    assert (done["phase"], done["mode"], done["site"]) == ("done", "mild", PARIS)
    assert done["bytes_done"] == done["bytes_total"] > first["bytes_total"]  # + the changes
    phases = [line.split()[0] for line in err.splitlines() if line.strip()]
    assert "sending-base" in phases and phases[-1] == "done"  # (the changes go in a blink)

    # Paris runs it from the joined disk: the marker as written before the move, and the
    # last count the ticker wrote at Berlin, after the freeze (in the changes).
    shown = at_paris.json("server", "show", mild)
    assert (shown["id"], shown["status"]) == (mild, "ACTIVE")
    until(lambda: "TICKS-FOUND-" in console(at_paris, mild), within=BOOT, every=1,
          what="the guest booted at Paris")  # fmt: skip
    text = console(at_paris, mild)
    assert "boot-count=2" in text
    assert f"MARKER-FOUND-{MARKER_SHA}" in text and "MARKER-WROTE" not in text
    found = int(text.split("TICKS-FOUND-", 1)[1].split()[0])
    assert found >= running_tick
    assert qemu_pid(berlin, mild) is None and not pid_alive(pid)
    qemu_state = berlin.data_dir / "agent" / "qemu"
    assert not (qemu_state / "guests" / mild).exists()
    assert not list((qemu_state / "snapshots").iterdir())
    assert not list((berlin.data_dir / "relocations").glob("*"))
    assert not list((fleet[PARIS].data_dir / "relocations").glob("*"))


def test_the_guest_comes_back_to_berlin_with_a_volume_that_moves(fleet, guests):
    """After the moves above ``mover`` runs at Paris: a volume of Paris (data written at
    1 MiB) is hot-plugged into it, and it goes back to Berlin with ``--volumes move``.
    Berlin's deleted row of it is replaced; Berlin's QEMU has the volume, the same id and
    data; Paris has neither the guest nor the volume any more."""
    osc, at_paris = clis(fleet)
    berlin, paris = fleet[BERLIN], fleet[PARIS]
    mover = guests["mover"]
    data = os.urandom(4 << 20)
    volume = at_paris.json("volume", "create", "--size", "1", "ledger")["id"]
    with open(paris.data_dir / "volumes" / f"{volume}.raw", "rb+") as f:
        f.seek(1 << 20)
        f.write(data)
    at_paris.run("server", "add", "volume", mover, volume)
    until(lambda: at_paris.json("volume", "show", volume)["status"] == "in-use", within=120,
          every=1, what="the volume plugged at Paris")  # fmt: skip
    paris_qemu = qemu_pid(paris, mover)

    slow = OpenStackCLI(auth_url=paris.auth_url, password=paris.password, region=PARIS,
                        timeout=300)  # fmt: skip
    done = slow.json("server", "relocate", "--site", BERLIN, "--volumes", "move", mover, "--wait")
    assert (done["phase"], done["site"]) == ("done", BERLIN)

    shown = osc.json("server", "show", mover)
    assert (shown["id"], shown["status"]) == (mover, "ACTIVE")
    assert shown["OS-EXT-SRV-ATTR:host"] == f"{BERLIN.lower()}-local"
    moved = osc.json("volume", "show", volume)
    assert (moved["id"], moved["name"], moved["status"]) == (volume, "ledger", "in-use")
    with open(berlin.data_dir / "volumes" / f"{volume}.raw", "rb") as f:
        f.seek(1 << 20)
        assert f.read(len(data)) == data
    pid = qemu_pid(berlin, mover)
    assert pid is not None
    assert volume.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()  # plugged at launch
    until(lambda: "boot-count=3" in console(osc, mover), within=BOOT, every=1,
          what="the guest booted at Berlin again")  # fmt: skip
    assert paris_qemu is not None and not pid_alive(paris_qemu)
    assert at_paris.run("volume", "show", volume, check=False).returncode != 0
    assert not (paris.data_dir / "volumes" / f"{volume}.raw").exists()
