"""The whole-disk image: an MBR, one FAT partition, syslinux, the kernel and initramfs.

It is what a cloud image is to the driver: a disk whose boot loader finds the kernel,
so the guest boots without ``kernel_id``/``ramdisk_id``. The FAT partition (label
``EDGEFEDBOOT``) also holds the guest's boot counter, which makes a snapshot's copy
visible. Built without a loop device or a mount: ``mkfs.vfat -C`` makes the file
system in a file, mtools copies into it, ``syslinux --install`` writes its boot
sector, ``sfdisk`` writes the partition table and the MBR code is syslinux's.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from edgefed.guest_image.debs import BuildError, run

LABEL = "EDGEFEDBOOT"
MBR_CODE = Path("/usr/lib/syslinux/mbr/mbr.bin")
PARTITION_START_SECTOR = 2048  # 1 MiB, as partitioning tools align
# Room left on the partition beyond the kernel and initramfs, for the boot counter
# and for a rebuilt initramfs of a later version.
SLACK_KIB = 4096


def build_boot_disk(vmlinuz: Path, initrd: Path, out: Path, scratch: Path, cmdline: str) -> None:
    """Write ``out``: a qcow2 of an MBR disk whose partition boots ``cmdline``."""
    if not MBR_CODE.exists():
        raise BuildError(f"{MBR_CODE} is missing (Debian package syslinux-common)")
    kib = (vmlinuz.stat().st_size + initrd.stat().st_size) // 1024 + SLACK_KIB
    kib = (kib + 1023) // 1024 * 1024
    partition = scratch / "partition.img"
    partition.unlink(missing_ok=True)
    run("mkfs.vfat", "-C", "-n", LABEL, str(partition), str(kib))
    config = scratch / "syslinux.cfg"
    config.write_text(
        "SERIAL 0 115200\nDEFAULT linux\nPROMPT 0\nTIMEOUT 0\n"
        f"LABEL linux\n  KERNEL /vmlinuz\n  INITRD /initrd.img\n  APPEND {cmdline}\n"
    )
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    run("mcopy", "-i", str(partition), str(vmlinuz), str(initrd), str(config), "::", env=env)
    run("syslinux", "--install", str(partition))
    raw = scratch / "disk.raw"
    with open(raw, "wb") as disk:
        disk.truncate(PARTITION_START_SECTOR * 512 + partition.stat().st_size)
    run(
        "sfdisk",
        "-q",
        str(raw),
        stdin=f"label: dos\nstart={PARTITION_START_SECTOR}, type=c, bootable\n",
    )
    with open(raw, "r+b") as disk:
        disk.write(MBR_CODE.read_bytes()[:440])  # the MBR's code area, before the table
        disk.seek(PARTITION_START_SECTOR * 512)
        with open(partition, "rb") as source:
            shutil.copyfileobj(source, disk)
    partial = out.with_suffix(".partial")
    run("qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(partial))
    partial.replace(out)
