"""Real guests under QEMU (TCG here): boot, first boot data, lifecycle, snapshot, adoption.

One whole-disk guest is booted for the module and shared by the lifecycle tests (they
run in order, each from the state the previous one left); the direct kernel boot, the
snapshot's copy and the adopted guest are booted one at a time beside it, so at most
two guests run at once. Every wait is a bounded look at the guest's console or an
event; every process and file is removed at the end.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from qemu_support import NETNS_TAP, Console, needs_qemu

from edgefed.drivers.base import PowerState
from edgefed.drivers.qemu import (
    BlockDevice,
    GuestNotFound,
    GuestSpec,
    ImageRefused,
    ImageSource,
    Nic,
    QemuHypervisor,
    QemuSettings,
    transfer,
)
from edgefed.drivers.qemu.cmdline import blockdev_node
from edgefed.guest_image import GuestImage
from edgefed.testkit.process import pid_alive
from edgefed.testkit.wait import eventually

pytestmark = [needs_qemu, pytest.mark.asyncio(loop_scope="module")]

SETTINGS = QemuSettings(shutdown_timeout=30, maintenance_interval=1.0)
USER_DATA = (
    b"#!/bin/sh\n"
    b"echo USERDATA-MARKER-$(hostname)\n"
    b'echo "DISKS $(ls /sys/block | tr "\\n" " ")"\n'
    b'echo "EPHEMERAL $(findfs LABEL=ephemeral0)"\n'
)


def argv_of(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


@pytest.fixture(scope="module")
def changes() -> list[tuple[str, PowerState]]:
    """What the hypervisor told its owner of guests that changed state by themselves."""
    return []


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hv(
    tmp_path_factory: pytest.TempPathFactory, changes: list[tuple[str, PowerState]]
) -> AsyncIterator[QemuHypervisor]:
    hypervisor = QemuHypervisor(
        state_dir=tmp_path_factory.mktemp("qemu") / "state",
        settings=SETTINGS,
        on_change=lambda guest, state: changes.append((guest, state)),
    )
    await hypervisor.open()
    yield hypervisor
    for guest_id in hypervisor.guest_ids():
        pid = hypervisor.pid(guest_id)
        await hypervisor.destroy(guest_id)
        assert pid is None or not pid_alive(pid)
    await hypervisor.close()
    assert not hypervisor.layout.alias.exists()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def booted(hv: QemuHypervisor, guest_image: GuestImage) -> str:
    """A whole-disk guest with user data, an ephemeral and a swap disk, up and ready."""
    guest_id = str(uuid.uuid4())
    await hv.spawn(
        GuestSpec(
            id=guest_id,
            name="disk-guest",
            vcpus=1,
            ram_mb=128,
            root_gb=1,
            ephemeral_gb=1,
            swap_mb=32,
            image=ImageSource(guest_image.disk, disk_format="qcow2"),
            user_data=USER_DATA,
            public_keys={"k": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 test@edgefed"},
        )
    )
    await Console(hv, guest_id).wait_for("EDGEFED-GUEST ready")
    return guest_id


async def running(hv: QemuHypervisor, guest_id: str) -> int:
    """The guest's pid, once it runs and its shell answers."""
    pid = hv.pid(guest_id)
    assert pid is not None and pid_alive(pid)
    return pid


async def shell(console: Console, command: str, expected: str) -> None:
    """Type ``command`` on the guest's serial shell and wait for ``expected``."""
    await console.type(command, until=expected)


async def test_a_whole_disk_guest_boots_as_an_openstack_guest(
    hv: QemuHypervisor, booted: str
) -> None:
    console = Console(hv, booted)
    text = console.text()
    assert "EDGEFED-GUEST userspace" in text
    assert f"uuid={booted} name=disk-guest" in text  # read from the config drive
    assert "USERDATA-MARKER-disk-guest" in text  # the user data ran, hostname set
    assert "DISKS vda vdb vdc vdd" in text  # root, ephemeral, swap, config drive
    assert "EPHEMERAL /dev/vdb" in text
    assert "EDGEFED-GUEST ready host=disk-guest" in text
    assert console.boot_count() == 1
    pid = await running(hv, booted)
    argv = argv_of(pid)
    assert "-kernel" not in argv and "-daemonize" in argv
    assert argv[argv.index("-uuid") + 1] == booted
    assert hv.power_state(booted) == PowerState.RUNNING


async def test_diagnostics_count_real_work(hv: QemuHypervisor, booted: str) -> None:
    diagnostics = await hv.diagnostics(booted)
    assert diagnostics["state"] == "running"
    assert (diagnostics["num_cpus"], diagnostics["num_disks"], diagnostics["num_nics"]) == (1, 4, 0)
    assert diagnostics["cpu_details"][0]["time"] > 0
    assert diagnostics["disk_details"][0]["read_bytes"] > 1024 * 1024  # the kernel came from it
    assert diagnostics["memory_details"]["maximum"] == 128
    assert 0 < diagnostics["memory_details"]["used"] <= 128


async def test_pause_freezes_the_guest_and_unpause_lets_it_go_on(
    hv: QemuHypervisor, booted: str
) -> None:
    pid = await running(hv, booted)
    await hv.pause(booted)
    assert hv.power_state(booted) == PowerState.PAUSED
    assert (await hv.diagnostics(booted))["state"] == "paused"
    await hv.unpause(booted)
    assert hv.power_state(booted) == PowerState.RUNNING
    assert hv.pid(booted) == pid
    await shell(Console(hv, booted), "echo UNPAUSED-$((6*7))", "UNPAUSED-42")


async def test_a_hard_reboot_starts_a_new_process(hv: QemuHypervisor, booted: str) -> None:
    console = Console(hv, booted)
    pid, boots = await running(hv, booted), console.boot_count()
    ready = console.count("EDGEFED-GUEST ready")
    presses = console.count("EDGEFED-GUEST acpi power button")
    await hv.reboot(booted, hard=True)
    assert await running(hv, booted) != pid and not pid_alive(pid)
    await console.wait_for("EDGEFED-GUEST ready", count=ready + 1)
    assert console.boot_count() == boots + 1
    assert console.count("EDGEFED-GUEST acpi power button") == presses  # no button: hard


async def test_a_soft_reboot_goes_through_acpi_and_a_new_process(
    hv: QemuHypervisor, booted: str
) -> None:
    console = Console(hv, booted)
    pid, boots = await running(hv, booted), console.boot_count()
    presses = console.count("EDGEFED-GUEST acpi power button")
    ready = console.count("EDGEFED-GUEST ready")
    await hv.reboot(booted, hard=False)
    assert console.count("EDGEFED-GUEST acpi power button") == presses + 1
    new_pid = await running(hv, booted)
    assert new_pid != pid and not pid_alive(pid)
    await console.wait_for("EDGEFED-GUEST ready", count=ready + 1)
    assert console.boot_count() == boots + 1


async def test_suspend_saves_the_guest_and_resume_carries_on(
    hv: QemuHypervisor, booted: str
) -> None:
    console = Console(hv, booted)
    pid, boots = await running(hv, booted), console.count("EDGEFED-GUEST userspace")
    await hv.suspend(booted)
    state_file = hv.layout.guest(booted).suspend_state
    assert hv.power_state(booted) == PowerState.SUSPENDED
    assert not pid_alive(pid) and state_file.stat().st_size > 1024 * 1024
    await hv.resume(booted)
    assert hv.power_state(booted) == PowerState.RUNNING
    assert await running(hv, booted) != pid
    assert not state_file.exists()
    await shell(console, "echo RESUMED-$((40+2))", "RESUMED-42")
    assert console.count("EDGEFED-GUEST userspace") == boots  # resumed, not rebooted


async def test_stop_presses_the_power_button_and_start_boots_again(
    hv: QemuHypervisor, booted: str
) -> None:
    console = Console(hv, booted)
    pid, boots = await running(hv, booted), console.boot_count()
    presses = console.count("EDGEFED-GUEST acpi power button")
    ready = console.count("EDGEFED-GUEST ready")
    started = time.monotonic()
    await hv.stop(booted)
    assert time.monotonic() - started < SETTINGS.shutdown_timeout
    assert console.count("EDGEFED-GUEST acpi power button") == presses + 1
    assert hv.power_state(booted) == PowerState.SHUTDOWN and not pid_alive(pid)
    assert hv.pid(booted) is None
    assert "EDGEFED-GUEST shutdown" in hv.console_output(booted, lines=20)
    await hv.start(booted)
    await console.wait_for("EDGEFED-GUEST ready", count=ready + 1)
    assert console.boot_count() == boots + 1


async def test_stop_turns_hard_when_the_guest_ignores_the_button(
    hv: QemuHypervisor, booted: str
) -> None:
    console = Console(hv, booted)
    await running(hv, booted)
    await shell(console, "killall acpid && echo ACPID-$((1+1))-GONE", "ACPID-2-GONE")
    presses = console.count("EDGEFED-GUEST acpi power button")
    started = time.monotonic()
    await hv.stop(booted, timeout=1.0)
    took = time.monotonic() - started
    assert 1.0 <= took < 1.0 + 2 * SETTINGS.kill_grace
    assert console.count("EDGEFED-GUEST acpi power button") == presses
    assert hv.power_state(booted) == PowerState.SHUTDOWN
    ready = console.count("EDGEFED-GUEST ready")
    await hv.start(booted)
    await console.wait_for("EDGEFED-GUEST ready", count=ready + 1)


async def test_a_snapshot_is_a_standalone_copy_that_boots(
    hv: QemuHypervisor, booted: str, tmp_path: Path
) -> None:
    await running(hv, booted)
    boots = Console(hv, booted).boot_count()
    snapshot = await hv.snapshot(booted, target=tmp_path / "snap.qcow2")
    assert snapshot.disk_format == "qcow2" and snapshot.path == tmp_path / "snap.qcow2"
    facts = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(snapshot.path)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    assert "backing-filename" not in facts
    assert facts["actual-size"] < facts["virtual-size"] // 20
    copy_id = str(uuid.uuid4())
    await hv.spawn(
        GuestSpec(
            id=copy_id,
            name="from-snapshot",
            vcpus=1,
            ram_mb=128,
            image=ImageSource(snapshot.path, disk_format="qcow2"),
        )
    )
    try:
        copy = Console(hv, copy_id)
        await copy.wait_for("EDGEFED-GUEST ready")
        # the copy's disk carries the original's boot counter: it is the guest's disk
        assert copy.boot_count() == boots + 1
        assert hv.power_state(booted) == PowerState.RUNNING
    finally:
        await hv.destroy(copy_id)


async def test_a_hot_plugged_volume_is_seen_and_released(
    hv: QemuHypervisor, booted: str, tmp_path: Path
) -> None:
    # rng and four disks take PCI slots 2 to 6: the volume lands in slot 7, beyond the
    # BIOS's interrupt routing table (the guest must route its interrupt through ACPI)
    console = Console(hv, booted)
    await running(hv, booted)
    volume = tmp_path / "vol1.raw"
    with open(volume, "wb") as f:
        f.truncate(16 * 1024 * 1024)
    await hv.attach_block(booted, BlockDevice(device_id="vol1", path=volume))
    # one "disk=serial," per disk (sysfs gives a serial without a newline)
    listing = (
        'echo "SERIALS $(for d in /sys/block/vd*; do '
        'echo -n "${d##*/}=$(cat $d/serial),"; done)END"'
    )
    await console.type(listing, until="vde=vol1,END")  # the guest probed it, serial and all
    await hv.detach_block(booted, "vol1")  # returns once the guest let go of it
    await console.type(listing, until="vdd=,END")
    assert "vol1" not in console.text().rsplit("SERIALS ", 1)[1]


async def test_an_attach_cut_short_is_completed_when_sent_again(
    hv: QemuHypervisor, booted: str, tmp_path: Path
) -> None:
    # The agent that ran the attach was killed once QEMU had its blockdev-add (the
    # monitor runs what it was sent): QEMU has the node, the plan nothing. The attach
    # sent again to the next agent plugs the disk, once, instead of a duplicate node.
    console = Console(hv, booted)
    await running(hv, booted)
    volume = tmp_path / "vol2.raw"
    with open(volume, "wb") as f:
        f.truncate(16 * 1024 * 1024)
    device = BlockDevice(device_id="vol2", path=volume)
    guest = hv._load(booted)
    await guest.attach()
    disk = transfer.disk_of(guest.files.directory, device)
    await guest.monitor().execute("blockdev-add", blockdev_node(disk))
    await hv.attach_block(booted, device)
    await hv.attach_block(booted, device)  # and again: it has it
    listing = 'echo "SERIALS $(cat /sys/block/vd*/serial | tr "\\n" " ")END"'
    await console.type(listing, until="vol2")
    assert console.text().rsplit("SERIALS ", 1)[1].split("END")[0].split().count("vol2") == 1
    await hv.detach_block(booted, "vol2")


async def test_console_output_gives_the_last_lines(hv: QemuHypervisor, booted: str) -> None:
    last = hv.console_output(booted, lines=3)
    assert 0 < len(last.splitlines()) <= 3
    assert hv.console_output(booted).endswith(last)


async def test_direct_kernel_boot_with_a_static_nic_in_a_namespace(
    hv: QemuHypervisor,
    booted: str,
    guest_image: GuestImage,
    netns: str,
    changes: list[tuple[str, PowerState]],
    tmp_path: Path,
) -> None:
    root = tmp_path / "root.raw"  # a blank raw root disk: the guest lives in its initramfs
    with open(root, "wb") as f:
        f.truncate(8 * 1024 * 1024)
    guest_id = str(uuid.uuid4())
    await hv.spawn(
        GuestSpec(
            id=guest_id,
            name="kernel-guest",
            vcpus=1,
            ram_mb=128,
            image=ImageSource(root, disk_format="raw"),
            kernel=ImageSource(guest_image.vmlinuz),
            ramdisk=ImageSource(guest_image.initrd),
            kernel_cmdline=guest_image.kernel_cmdline,
            nics=(
                Nic(
                    tap=NETNS_TAP,
                    mac="fa:16:3e:00:00:0a",
                    port_id="p1",
                    network_id="n1",
                    address="192.0.2.10/24",
                    gateway="192.0.2.1",
                ),
            ),  # fmt: skip
            netns=netns,
            user_data=b"#!/bin/sh\necho USERDATA-MARKER-kernel\n",
        )
    )
    try:
        console = Console(hv, guest_id)
        await console.wait_for("EDGEFED-GUEST ready")
        text = console.text()
        assert "net eth0 192.0.2.10/24 static" in text
        assert "USERDATA-MARKER-kernel" in text and "boot-count=" not in text
        argv = argv_of(await running(hv, guest_id))
        kernel = argv[argv.index("-kernel") + 1]
        assert kernel.startswith(str(hv.layout.images))
        assert kernel.endswith(".pvh-elf")  # Debian's kernel has a PVH entry: no bzImage detour
        assert argv[argv.index("-append") + 1] == guest_image.kernel_cmdline

        def inside(*command: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                ["ip", "netns", "exec", netns, "busybox", *command],
                capture_output=True,
                text=True,
                timeout=20,
            )

        ping = inside("ping", "-c", "1", "-W", "5", "192.0.2.10")
        assert ping.returncode == 0, ping.stdout + ping.stderr
        page = inside("wget", "-q", "-O", "-", "http://192.0.2.10/")
        assert page.stdout.strip() == f"kernel-guest {guest_id}", page.stderr
        nic = (await hv.diagnostics(guest_id))["nic_details"][0]
        assert nic["mac_address"] == "fa:16:3e:00:00:0a"
        assert nic["rx_packets"] > 0 and nic["tx_packets"] > 0

        # the guest powers itself off: the owner hears of it without asking
        async def told() -> bool:
            return (guest_id, PowerState.SHUTDOWN) in changes

        await console.type("poweroff")
        await eventually(told, within=60, what="a SHUTDOWN notification")
        assert hv.power_state(guest_id) == PowerState.SHUTDOWN
    finally:
        await hv.destroy(guest_id)
    assert hv.power_state(guest_id) == PowerState.NOSTATE


async def test_a_bad_image_is_refused_and_leaves_nothing(
    hv: QemuHypervisor, tmp_path: Path
) -> None:
    sneaky = tmp_path / "sneaky.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-F", "raw", "-b", "/etc/passwd",
         str(sneaky), "64M"],
        check=True,
    )  # fmt: skip
    guest_id = str(uuid.uuid4())
    spec = GuestSpec(id=guest_id, name="bad", vcpus=1, ram_mb=64, image=ImageSource(sneaky))
    with pytest.raises(ImageRefused, match="backing file \\(/etc/passwd\\)"):
        await hv.spawn(spec)
    assert not hv.layout.guest(guest_id).directory.exists()
    assert hv.power_state(guest_id) == PowerState.NOSTATE


async def test_a_missing_kernel_fails_the_spawn_as_itself_and_leaves_nothing(
    hv: QemuHypervisor, guest_image: GuestImage, tmp_path: Path
) -> None:
    # the boot images are cached while the disks and the config drive are being made:
    # the failure comes out as raised, once the other jobs stopped
    guest_id = str(uuid.uuid4())
    spec = GuestSpec(
        id=guest_id,
        name="no-kernel",
        vcpus=1,
        ram_mb=64,
        root_gb=1,
        ephemeral_gb=1,
        swap_mb=32,
        image=ImageSource(guest_image.disk, disk_format="qcow2"),
        kernel=ImageSource(tmp_path / "gone-vmlinuz"),
    )
    with pytest.raises(ImageRefused, match="not on this host") as refused:
        await hv.spawn(spec)
    assert refused.value.reason == "missing"
    assert not hv.layout.guest(guest_id).directory.exists()
    assert hv.power_state(guest_id) == PowerState.NOSTATE


OWNER = """
import asyncio, sys
from pathlib import Path
from edgefed.drivers.qemu import GuestSpec, ImageSource, QemuHypervisor, QemuSettings

async def main() -> None:
    hv = QemuHypervisor(state_dir=Path(sys.argv[1]), settings=QemuSettings(accel="tcg"))
    await hv.spawn(GuestSpec(id=sys.argv[2], name="adoptee", vcpus=1, ram_mb=128,
                             image=ImageSource(Path(sys.argv[3]))))
    print("SPAWNED", hv.pid(sys.argv[2]), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_new_owner_adopts_the_guest_of_a_killed_one(
    hv: QemuHypervisor, booted: str, guest_image: GuestImage, tmp_path: Path
) -> None:
    state = tmp_path / "agent-state"
    guest_id = str(uuid.uuid4())
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, str(state), guest_id, str(guest_image.disk)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = await asyncio.wait_for(asyncio.to_thread(owner.stdout.readline), 60)  # type: ignore[union-attr]
        assert line.startswith("SPAWNED "), line
        pid = int(line.split()[1])
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        assert pid_alive(pid)  # the guest outlived its owner
    finally:
        owner.kill()
        owner.wait()
    heir = QemuHypervisor(state_dir=state, settings=SETTINGS)
    try:
        assert await heir.adopt() == {guest_id: PowerState.RUNNING}
        assert heir.pid(guest_id) == pid
        await Console(heir, guest_id).wait_for("EDGEFED-GUEST ready")
        assert (await heir.diagnostics(guest_id))["state"] == "running"  # QMP is back
        await heir.stop(guest_id)  # the power button, through the adopted monitor
        assert not pid_alive(pid)
        assert heir.power_state(guest_id) == PowerState.SHUTDOWN
    finally:
        await heir.destroy(guest_id)
        await heir.close()
    assert not heir.layout.alias.exists()


async def test_a_guest_spawned_powered_off_is_made_but_not_started(
    hv: QemuHypervisor, guest_image: GuestImage
) -> None:
    """As a stopped server that moved: its disks are made, QEMU is not started (so the
    guest never boots) until ``start``."""
    guest_id = str(uuid.uuid4())
    spec = GuestSpec(
        id=guest_id, name="made-off", vcpus=1, ram_mb=128, root_gb=1,
        image=ImageSource(guest_image.disk, disk_format="qcow2"), power_on=False,
    )  # fmt: skip
    try:
        await hv.spawn(spec)
        assert guest_id in hv.guest_ids()
        assert hv.power_state(guest_id) == PowerState.SHUTDOWN and hv.pid(guest_id) is None
        assert hv.layout.guest(guest_id).root_disk.exists()
        assert hv.console_output(guest_id) == ""
        await hv.start(guest_id)
        pid = await running(hv, guest_id)
        assert hv.power_state(guest_id) == PowerState.RUNNING
    finally:
        await hv.destroy(guest_id)
    assert not pid_alive(pid)


async def test_destroy_removes_the_guest_and_its_files(hv: QemuHypervisor, booted: str) -> None:
    pid = await running(hv, booted)
    directory = hv.layout.guest(booted).directory
    await hv.destroy(booted)
    assert not pid_alive(pid) and not directory.exists()
    assert hv.power_state(booted) == PowerState.NOSTATE
    with pytest.raises(GuestNotFound):
        hv.console_output(booted)
    await hv.destroy(booted)  # twice is fine
