"""Volumes on real guests, through the real ``openstack`` CLI: an all-in-one site with
the qemu driver (its own host agent, QEMU under TCG, the tiny guest image).

A writer guest gets an empty volume hot-plugged (``server add volume``), writes 1 MiB
of random data to it with fsync and prints its sha256; the volume is unplugged
(``server remove volume``) and plugged into a reader guest, which prints the sha256 it
reads: the same, and the same as the volume's file on the site's disk. A snapshot of
the volume, made into a new volume, reads the same again. A volume made of the image
boots a guest (``server create --volume``), and that volume uploaded as an image
(``image create --volume``) boots another. Guests print what they find on the serial
console; every wait is a bounded poll (``until``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from qemu_site import built_guest_image, host_ready, qemu_site
from volume_guest import MIB, disk_watcher

from edgefed.testkit.agents import host_json
from edgefed.testkit.osc import OpenStackCLI
from edgefed.testkit.process import SiteProcess
from edgefed.testkit.wait import until

TAG = f"vg{os.getpid()}"
SITE = f"V{TAG}"
BOOT = 240.0  # seconds a TCG guest may take to boot on a loaded 2-core machine


pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(900),
    pytest.mark.skipif(not host_ready(), reason="needs root, QEMU, ip, nft, dnsmasq, tun"),
]


@pytest.fixture(scope="module")
def guest_disk() -> Path:
    return built_guest_image().disk


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteProcess]:
    with qemu_site(SITE, TAG, tmp_path_factory.mktemp("volume-site")) as proc:
        yield proc


def test_volumes_carry_data_between_guests_and_boot_them(site, guest_disk, tmp_path):
    osc = OpenStackCLI(auth_url=site.auth_url, password=site.password, timeout=240)
    image = osc.json("image", "create", "--disk-format", "qcow2", "--container-format", "bare",
                     "--file", str(guest_disk), "--public", "tiny")["id"]  # fmt: skip
    osc.run("flavor", "create", "--vcpus", "1", "--ram", "128", "--disk", "1", "v.tiny")
    host = f"{SITE.lower()}-local"
    until(lambda: host_json(site, host)["availability"] == "available", within=60,
          what="the local agent enrolled")  # fmt: skip

    def console(server: str) -> str:
        return osc.run("console", "log", "show", server).stdout

    def active(server: str) -> bool:
        shown = osc.json("server", "show", server)
        assert shown["status"] != "ERROR", shown.get("fault")
        return shown["status"] == "ACTIVE"

    def boot(name: str, *source: str, user_data: str | None = None) -> str:
        extra: list[str] = []
        if user_data is not None:
            (tmp_path / f"{name}.sh").write_text(user_data)
            extra = ["--user-data", str(tmp_path / f"{name}.sh")]
        return str(
            osc.json(
                "server", "create", *source, "--flavor", "v.tiny", "--nic", "none", *extra, name
            )["id"]  # fmt: skip
        )

    def ready(server: str) -> None:
        until(lambda: active(server), within=BOOT, every=1, what=f"{server} ACTIVE")
        until(lambda: "EDGEFED-GUEST ready" in console(server), within=BOOT, every=1,
              what=f"{server} booted")  # fmt: skip

    def volume_sum(server: str, mode: str, volume_id: str) -> str:
        prefix = f"VOL-{mode}-{volume_id[:20]}-"
        until(lambda: prefix in console(server), within=120, every=1,
              what=f"{server} {mode}s volume {volume_id}")  # fmt: skip
        return console(server).split(prefix, 1)[1][:64]

    def status(volume_id: str) -> str:
        return str(osc.json("volume", "show", volume_id)["status"])

    # Two guests boot side by side, and a volume of the image boots a third.
    writer = boot("writer", "--image", image, user_data=disk_watcher("write"))
    reader = boot("reader", "--image", image, user_data=disk_watcher("read"))
    boot_volume = osc.json("volume", "create", "--image", image, "--size", "1", "bootvol")["id"]
    assert osc.json("volume", "show", boot_volume)["bootable"] in (True, "true")
    from_volume = boot("from-volume", "--volume", boot_volume)
    for server in (writer, reader, from_volume):
        ready(server)
    shown = osc.json("volume", "show", boot_volume)
    assert shown["status"] == "in-use"
    assert shown["attachments"][0]["server_id"] == from_volume

    # The writer writes a volume; the site's file holds what it wrote.
    data = osc.json("volume", "create", "--size", "1", "data")["id"]
    osc.run("server", "add", "volume", writer, data)
    assert status(data) == "in-use"
    attached = osc.json("volume", "show", data)["attachments"]
    assert [(a["server_id"], a["device"]) for a in attached] == [(writer, "/dev/vdb")]
    written = volume_sum(writer, "write", data)
    on_disk = site.data_dir / "volumes" / f"{data}.raw"
    with open(on_disk, "rb") as f:
        assert hashlib.sha256(f.read(MIB)).hexdigest() == written

    # Unplugged from the writer (the guest let go of it), plugged into the reader.
    osc.run("server", "remove", "volume", writer, data)
    assert status(data) == "available"
    assert data not in str(osc.json("server", "show", writer).get("volumes_attached"))
    osc.run("server", "add", "volume", reader, data)
    assert volume_sum(reader, "read", data) == written

    # A snapshot keeps the data; a volume made of it reads the same.
    osc.run("server", "remove", "volume", reader, data)
    snap = osc.json("volume", "snapshot", "create", "--volume", data, "snap")["id"]
    until(lambda: osc.json("volume", "snapshot", "show", snap)["status"] == "available",
          within=60, what="snapshot available")  # fmt: skip
    restored = osc.json("volume", "create", "--snapshot", snap, "--size", "1", "restored")["id"]
    osc.run("server", "add", "volume", reader, restored)
    assert volume_sum(reader, "read", restored) == written

    # The boot volume, uploaded as an image once its guest is gone, boots another guest.
    osc.run("server", "delete", "--wait", from_volume)
    assert status(boot_volume) == "available"
    uploaded = osc.json("image", "create", "--volume", boot_volume, "from-bootvol")
    image_id = uploaded.get("image_id") or uploaded["id"]
    until(lambda: osc.json("image", "show", image_id)["status"] == "active", within=120,
          what="uploaded image active")  # fmt: skip
    again = boot("from-upload", "--image", image_id)
    ready(again)

    # Deleting a volume that is attached is refused, naming the cause.
    refused = osc.run("volume", "delete", restored, check=False)
    assert refused.returncode != 0 and "in-use" in (refused.stderr + refused.stdout).lower()
