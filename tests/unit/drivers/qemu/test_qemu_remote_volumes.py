"""A guest with a NIC, so running in a network namespace, gets another site's volume
hot-plugged: a real qemu-storage-daemon export over NBD with TLS-PSK on 127.0.0.1,
which the namespace cannot reach. The hypervisor relays a unix socket in the guest's
directory to it (``relay.py``); the guest reads what the export holds and writes with
fsync what lands in the volume's file. The agent then restarts (the hypervisor is
closed, its relays with it, and a new one adopts the guest): the relay starts again,
QEMU's NBD client reconnects, the guest's next write lands too. The detach stops the
relay. Every process, namespace and file made here is removed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from qemu_support import NETNS_TAP, Console, needs_qemu

from edgefed.drivers.base import PowerState
from edgefed.drivers.qemu import (
    BlockDevice,
    GuestNotFound,
    GuestSpec,
    ImageSource,
    Nic,
    QemuHypervisor,
    QemuSettings,
)
from edgefed.drivers.qemu.relay import relay_socket
from edgefed.guest_image import GuestImage
from edgefed.services.volume.exports import NbdExports
from edgefed.testkit.process import pid_alive

pytestmark = [
    needs_qemu,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("qemu-storage-daemon") is None,
        reason="needs root (a network namespace) and qemu-storage-daemon",
    ),
]

SETTINGS = QemuSettings(shutdown_timeout=30, maintenance_interval=1.0)
SERIAL = "remote-vol"
# the guest's device whose serial is the volume's, once the guest probed it (bounded)
FIND = (
    f"for i in $(seq 100); do grep -l {SERIAL} /sys/block/vd*/serial >/dev/null 2>&1 && break;"
    f" sleep 0.2; done; d=/dev/$(basename $(dirname $(grep -l {SERIAL} /sys/block/vd*/serial)))"
)


@pytest.fixture
async def export(tmp_path: Path) -> AsyncIterator[tuple[dict[str, Any], Path]]:
    """Another site's volume: a 16 MiB file behind its NBD export (TLS-PSK, loopback)."""
    volume = tmp_path / "volume.raw"
    with open(volume, "wb") as f:
        f.truncate(16 * 1024 * 1024)
    exports = NbdExports(tmp_path / "exports", bind_host="127.0.0.1", advertised_host="127.0.0.1")
    data = await exports.open(attachment_id=str(uuid.uuid4()), volume_path=volume, read_only=False)
    try:
        yield data, volume
    finally:
        await exports.close_all()


def reachable_from(netns: str, port: int) -> bool:
    probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), 3)"
    done = subprocess.run(
        ["ip", "netns", "exec", netns, sys.executable, "-c", probe],
        capture_output=True,
        timeout=30,
    )
    return done.returncode == 0


def at(volume: Path, offset: int, size: int) -> bytes:
    with open(volume, "rb") as f:
        f.seek(offset)
        return f.read(size)


async def test_a_guest_in_a_namespace_reads_and_writes_a_remote_volume(
    state_dir: Path,
    guest_image: GuestImage,
    netns: str,
    export: tuple[dict[str, Any], Path],
    tmp_path: Path,
) -> None:
    data, volume = export
    token = secrets.token_hex(8)
    with open(volume, "r+b") as f:
        f.write(f"HELLO{token}".encode())
    assert not reachable_from(netns, data["port"])  # QEMU could not connect by itself

    root = tmp_path / "root.raw"  # blank: the guest lives in its initramfs
    with open(root, "wb") as f:
        f.truncate(8 * 1024 * 1024)
    guest_id = str(uuid.uuid4())
    hv = QemuHypervisor(state_dir=state_dir, settings=SETTINGS)
    heir: QemuHypervisor | None = None
    try:
        await hv.spawn(
            GuestSpec(
                id=guest_id,
                name="nic-guest",
                vcpus=1,
                ram_mb=128,
                image=ImageSource(root, disk_format="raw"),
                kernel=ImageSource(guest_image.vmlinuz),
                ramdisk=ImageSource(guest_image.initrd),
                kernel_cmdline=guest_image.kernel_cmdline,
                nics=(Nic(tap=NETNS_TAP, mac="fa:16:3e:00:00:0b", address="192.0.2.11/24"),),
                netns=netns,
            )
        )
        console = Console(hv, guest_id)
        await console.wait_for("EDGEFED-GUEST ready")
        assert "net eth0 192.0.2.11/24 static" in console.text()

        device = BlockDevice(
            device_id="rvol", path=tmp_path / "unused", serial=SERIAL, nbd=dict(data)
        )
        await hv.attach_block(guest_id, device)
        relayed = relay_socket(hv.layout.guest(guest_id).sockets, "rvol")
        assert hv.relays.sockets() == [relayed] and relayed.exists()
        plugged = hv._load(guest_id).plan.volumes[0]
        assert plugged.nbd is not None and plugged.nbd["socket"] == str(relayed)

        # the guest reads what the export holds, and writes with fsync into its file
        read = f'{FIND}; echo "READ-$(dd if=$d bs=32 count=1 2>/dev/null | tr -dc A-Za-z0-9)"'
        await console.type(read, until=f"READ-HELLO{token}", within=90)
        write = f"{FIND}; printf %s-%s GUEST one | dd of=$d bs=512 seek=1 conv=fsync,notrunc"
        await console.type(f"{write} 2>/dev/null && echo WROTE-$((6*7))", until="WROTE-42")
        assert at(volume, 512, 9) == b"GUEST-one"

        # the agent restarts: its relays stop with it, the next one's adopt() starts them
        pid = hv.pid(guest_id)
        await hv.close()
        assert not relayed.exists()
        heir = QemuHypervisor(state_dir=state_dir, settings=SETTINGS)
        assert await heir.adopt() == {guest_id: PowerState.RUNNING}
        assert heir.pid(guest_id) == pid and heir.relays.sockets() == [relayed]
        console = Console(heir, guest_id)
        write = f"{FIND}; printf %s-%s GUEST two | dd of=$d bs=512 seek=2 conv=fsync,notrunc"
        # QEMU's NBD client reconnects by itself (reconnect-delay), backing off up to 16 s
        await console.type(
            f"{write} 2>/dev/null && echo WROTE-$((6*8))", until="WROTE-48", within=120
        )
        assert at(volume, 1024, 9) == b"GUEST-two"

        await heir.detach_block(guest_id, "rvol")
        assert heir.relays.sockets() == [] and not relayed.exists()
    finally:
        owner = heir or hv
        pid = None
        with contextlib.suppress(GuestNotFound):
            pid = owner.pid(guest_id)
        await owner.destroy(guest_id)
        await owner.close()
        assert pid is None or not pid_alive(pid)
    assert not hv.layout.alias.exists()
