"""QEMU's command line, the guest spec's checks and the state directory's paths."""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

import pytest

from edgefed.drivers.base import InstanceSpec
from edgefed.drivers.qemu.cmdline import DiskPlan, LaunchPlan, NicPlan, qemu_argv
from edgefed.drivers.qemu.errors import QemuError
from edgefed.drivers.qemu.layout import SUN_PATH_MAX, StateLayout
from edgefed.drivers.qemu.spec import GuestSpec, ImageSource, Nic, hostname_for

GUEST = "6a3c1f3e-8d2b-4f1a-9c77-1e2d3c4b5a69"


def plan(**changes: object) -> LaunchPlan:
    base = LaunchPlan(
        id=GUEST,
        name="web, 1",
        vcpus=2,
        ram_mb=256,
        accel="tcg",
        disks=(
            DiskPlan(node="root", path="/s/g/disk.qcow2", format="qcow2", boot=True),
            DiskPlan(node="config", path="/s/g/config.iso", format="raw", read_only=True),
        ),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def argv_of(launch: LaunchPlan, tmp_path: Path, **kwargs: bool) -> list[str]:
    return qemu_argv(launch, StateLayout(tmp_path).guest(GUEST), **kwargs)


def option(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv) if a == flag]


def test_a_whole_disk_guest_boots_its_root_disk(tmp_path: Path) -> None:
    argv = argv_of(plan(), tmp_path)
    assert argv[0] == "qemu-system-x86_64"
    assert "-kernel" not in argv
    assert option(argv, "-uuid") == [GUEST]
    assert option(argv, "-accel") == ["tcg"] and option(argv, "-cpu") == ["max"]
    assert option(argv, "-smp") == ["2"] and option(argv, "-m") == ["256"]
    assert option(argv, "-name") == ["guest=web,, 1,debug-threads=on"]  # a comma doubled
    assert "-daemonize" in argv and option(argv, "-sandbox")
    root, config = (json.loads(b) for b in option(argv, "-blockdev"))
    assert root["node-name"] == "root" and root["file"]["filename"] == "/s/g/disk.qcow2"
    assert config["read-only"] is True and config["driver"] == "raw"
    devices = option(argv, "-device")
    assert "virtio-blk-pci,drive=root,id=root-disk,bootindex=1" in devices
    assert "virtio-blk-pci,drive=config,id=config-disk" in devices
    assert (
        "type=1,manufacturer=OpenStack Foundation,product=OpenStack Nova"
        in option(argv, "-smbios")[0]
    )


def test_a_kernel_image_means_direct_kernel_boot(tmp_path: Path) -> None:
    launch = plan(kernel="/i/vmlinuz", initrd="/i/initrd", append="console=ttyS0 quiet")
    argv = argv_of(launch, tmp_path)
    assert option(argv, "-kernel") == ["/i/vmlinuz"]
    assert option(argv, "-initrd") == ["/i/initrd"]
    assert option(argv, "-append") == ["console=ttyS0 quiet"]


def test_nics_are_taps_the_caller_made_in_its_namespace(tmp_path: Path) -> None:
    launch = plan(nics=(NicPlan(tap="tap-a1", mac="fa:16:3e:00:00:01"),), netns="site-ns")
    argv = argv_of(launch, tmp_path)
    assert argv[:5] == ["ip", "netns", "exec", "site-ns", "qemu-system-x86_64"]
    assert option(argv, "-netdev") == ["tap,id=net0,ifname=tap-a1,script=no,downscript=no"]
    assert "virtio-net-pci,netdev=net0,mac=fa:16:3e:00:00:01,id=nic0" in option(argv, "-device")
    no_nic = argv_of(plan(), tmp_path)
    assert "-netdev" not in no_nic and no_nic[0] == "qemu-system-x86_64"


def test_a_resume_waits_for_its_state_and_kvm_uses_the_host_cpu(tmp_path: Path) -> None:
    argv = argv_of(plan(accel="kvm"), tmp_path, incoming=True, sandbox=False)
    assert argv[-2:] == ["-incoming", "defer"]
    assert option(argv, "-cpu") == ["host"]
    assert "-sandbox" not in argv


def test_hot_plugged_volumes_come_back_at_the_next_launch(tmp_path: Path) -> None:
    volume = DiskPlan(node="vol1", path="/v/vol1.raw", format="raw", serial="vol1")
    argv = argv_of(plan(volumes=(volume,)), tmp_path)
    assert "virtio-blk-pci,drive=vol1,id=vol1-disk,serial=vol1" in option(argv, "-device")


def test_devices_a_live_migration_pinned_come_first_at_their_addresses(
    tmp_path: Path,
) -> None:
    """The source's PCI addresses (a volume hot-plugged there sits after a NIC): those
    devices first, at them, so that none QEMU places itself takes their slots."""
    volume = DiskPlan(node="vol1", path="/v/vol1.raw", format="raw", serial="vol1")
    nic = NicPlan(tap="t0", mac="fa:16:3e:00:00:01")
    pinned = {"rng0": "2.0", "vol1-disk": "6.0", "nic0": "5.0"}
    argv = argv_of(plan(volumes=(volume,), nics=(nic,), extra={"pci": pinned}), tmp_path)
    assert option(argv, "-device") == [
        "virtio-rng-pci,id=rng0,addr=2.0",
        "virtio-blk-pci,drive=vol1,id=vol1-disk,serial=vol1,addr=6.0",
        "virtio-net-pci,netdev=net0,mac=fa:16:3e:00:00:01,id=nic0,addr=5.0",
        "virtio-blk-pci,drive=root,id=root-disk,bootindex=1",
        "virtio-blk-pci,drive=config,id=config-disk",
    ]
    unpinned = option(argv_of(plan(volumes=(volume,), nics=(nic,)), tmp_path), "-device")
    assert unpinned[0] == "virtio-rng-pci,id=rng0" and not any("addr=" in d for d in unpinned)


def test_the_plan_survives_its_file(tmp_path: Path) -> None:
    launch = plan(
        nics=(NicPlan(tap="t0", mac="fa:16:3e:00:00:01"),),
        volumes=(DiskPlan(node="v", path="/v", format="raw"),),
        kernel="/k",
    )
    assert LaunchPlan.from_json(launch.to_json()) == launch


def test_sockets_fit_sun_path_even_in_a_deep_state_directory(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    layout = StateLayout(deep)
    assert layout.needs_alias
    layout.prepare()
    files = layout.guest(GUEST)
    try:
        assert len(str(files.serial_socket)) <= SUN_PATH_MAX
        files.directory.mkdir()
        assert files.serial_socket.parent.resolve() == files.directory
        layout.remove_alias()
        assert layout.alias.exists()  # a guest's sockets still need it
    finally:
        files.directory.rmdir()
        layout.remove_alias()
    assert not layout.alias.exists()
    shallow = StateLayout(Path("/var/lib/edgefed/qemu"))
    assert not shallow.needs_alias
    assert shallow.guest(GUEST).qmp_socket == Path(f"/var/lib/edgefed/qemu/guests/{GUEST}/qmp.sock")


def test_a_spec_refuses_what_cannot_be_launched() -> None:
    image = ImageSource(Path("/i"))
    with pytest.raises(QemuError, match="not a UUID"):
        GuestSpec(id="../../etc", name="x", vcpus=1, ram_mb=64, image=image)
    with pytest.raises(QemuError, match="tap name"):
        Nic(tap="tap,evil=1", mac="fa:16:3e:00:00:01")
    with pytest.raises(QemuError, match="MAC"):
        Nic(tap="tap0", mac="FA-16-3E-00-00-01")
    with pytest.raises(QemuError, match="needs a kernel"):
        GuestSpec(id=GUEST, name="x", vcpus=1, ram_mb=64, image=image, ramdisk=image)
    with pytest.raises(QemuError, match="network namespace"):
        GuestSpec(id=GUEST, name="x", vcpus=1, ram_mb=64, image=image, netns="a b")


def test_a_spec_maps_the_compute_services_instance() -> None:
    instance = InstanceSpec(
        id=GUEST.upper(),
        name="Web Server #1",
        host="h1",
        vcpus=1,
        ram_mb=128,
        disk_gb=1,
        image_path=Path("/images/abc"),
        user_data=base64.b64encode(b"#!/bin/sh\necho hi\n").decode(),
    )
    spec = GuestSpec.from_instance(instance, swap_mb=64)
    assert spec.id == GUEST
    assert (spec.root_gb, spec.swap_mb, spec.image.path) == (1, 64, Path("/images/abc"))
    assert spec.user_data == b"#!/bin/sh\necho hi\n"
    assert spec.metadata().hostname == "web-server-1"
    assert hostname_for("...") == "server"
