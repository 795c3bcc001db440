"""Build the tiny guest once, and know when a build is still good.

Outputs, in ``out`` (``.cache/guest-image`` for ``make guest-image``):

    vmlinuz         the Debian cloud kernel: a ``kernel_id`` image for direct kernel boot
    initrd.img      busybox and /etc/rc: the ``ramdisk_id`` image
    disk.qcow2      a whole-disk image booting the same pair through syslinux
    manifest.json   package versions, kernel command line, sizes, sha256, cache key
    debs/           the downloaded packages, kept so a rebuild downloads nothing

The cache key covers the local inputs only (this package's code, ``rootfs/``, the
command line and module list): checking that the image is up to date reads files and
runs nothing, so ``make test`` pays milliseconds. ``--force`` rebuilds from the
packages' current versions.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgefed.guest_image import bootdisk, debs, initramfs

PACKAGE_DIR = Path(__file__).resolve().parent
ROOTFS = PACKAGE_DIR / "rootfs"
KERNEL_META_PACKAGE = "linux-image-cloud-amd64"
BUSYBOX_PACKAGE = "busybox-static"

# The kernel command line, for the disk's boot loader and for direct kernel boot (it is
# the image's os_command_line). Each flag buys boot time under TCG (docs/qemu.md):
# nokaslr saves ~1 s of relocation; cryptomgr.notests ~0.5 s of self-tests before /init;
# random.trust_cpu, tsc=reliable and no_timer_check skip waits and calibration; i8042.*
# skip probing a keyboard and mouse the guest does not have; pci=nomsi saves ~0.4 s a
# virtio device of MSI-X setup, the few interrupts of this guest sharing the INTx lines
# that ACPI routes.
#
# Not acpi=noirq, although it saves as much: it routes INTx from SeaBIOS's $PIR table,
# which lists PCI slots 1 to 6 only, and Debian's kernel has no MP-table support, so
# the guest stays in PIC mode. A device in slot 7 or beyond (a hot-plugged volume, a
# guest with more than five disks and NICs) then gets no interrupt and fails to probe.
KERNEL_CMDLINE = (
    "console=ttyS0 nokaslr cryptomgr.notests random.trust_cpu=on tsc=reliable "
    "no_timer_check i8042.noaux i8042.nokbd i8042.nopnp pci=nomsi"
)


@dataclass(frozen=True, slots=True)
class GuestImage:
    """A built guest image: its files and what they were built from."""

    directory: Path
    manifest: dict[str, Any]

    @property
    def vmlinuz(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"

    @property
    def disk(self) -> Path:
        return self.directory / "disk.qcow2"

    @property
    def kernel_cmdline(self) -> str:
        return str(self.manifest["kernel_cmdline"])


def cache_key() -> str:
    digest = hashlib.sha256(f"{KERNEL_CMDLINE}\n{initramfs.MODULES}\n".encode())
    for source in sorted(PACKAGE_DIR.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    for path in sorted(ROOTFS.rglob("*")):
        digest.update(path.relative_to(ROOTFS).as_posix().encode() + b"\0")
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def up_to_date(out: Path) -> GuestImage | None:
    """The image in ``out`` if it was built from these inputs and is all there."""
    manifest_path = out / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return None
    image = GuestImage(directory=out, manifest=manifest)
    if manifest.get("key") != cache_key():
        return None
    for name, facts in manifest.get("files", {}).items():
        path = out / name
        if not path.exists() or path.stat().st_size != facts["size"]:
            return None
    return image


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_guest_image(out: Path, *, force: bool = False) -> GuestImage:
    """Build into ``out`` unless an up-to-date build is there; the image either way."""
    if not force and (image := up_to_date(out)) is not None:
        return image
    started = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    deb_cache = out / "debs"
    kernel_package = debs.dependency_named(KERNEL_META_PACKAGE, "linux-image-")
    kernel_version = debs.candidate(kernel_package)
    busybox_version = debs.candidate(BUSYBOX_PACKAGE)
    kernel_deb = debs.fetch(kernel_package, kernel_version, deb_cache)
    busybox_deb = debs.fetch(BUSYBOX_PACKAGE, busybox_version, deb_cache)
    fetched = time.monotonic()

    kernel_files = debs.members(kernel_deb, lambda n: "/boot/vmlinuz-" in n or n.endswith(".ko"))
    vmlinuz = next((data for name, data in kernel_files.items() if "/boot/vmlinuz-" in name), None)
    if vmlinuz is None:
        raise debs.BuildError(f"{kernel_package} holds no /boot/vmlinuz-*")
    available = {
        Path(name).name[: -len(".ko")].replace("-", "_"): data
        for name, data in kernel_files.items()
        if name.endswith(".ko")
    }
    busybox = next(iter(debs.members(busybox_deb, lambda n: n.endswith("bin/busybox")).values()))
    modules = initramfs.select_modules(available)
    (out / "vmlinuz").write_bytes(vmlinuz)
    (out / "initrd.img").write_bytes(initramfs.build_initramfs(busybox, modules, ROOTFS))
    assembled = time.monotonic()
    with tempfile.TemporaryDirectory(dir=out) as scratch:
        bootdisk.build_boot_disk(
            out / "vmlinuz", out / "initrd.img", out / "disk.qcow2", Path(scratch), KERNEL_CMDLINE
        )
    finished = time.monotonic()
    manifest = {
        "key": cache_key(),
        "kernel_package": f"{kernel_package}={kernel_version}",
        "busybox_package": f"{BUSYBOX_PACKAGE}={busybox_version}",
        "kernel_cmdline": KERNEL_CMDLINE,
        "modules": initramfs.load_order(modules),
        "files": {
            name: {"size": (out / name).stat().st_size, "sha256": _sha256(out / name)}
            for name in ("vmlinuz", "initrd.img", "disk.qcow2")
        },
        "seconds": {
            "fetch": round(fetched - started, 2),
            "initramfs": round(assembled - fetched, 2),
            "disk": round(finished - assembled, 2),
        },
    }
    manifest_path = out / "manifest.json"
    partial = manifest_path.with_suffix(".partial")
    partial.write_text(json.dumps(manifest, indent=2) + "\n")
    partial.replace(manifest_path)  # written last: a half-built image is never up to date
    return GuestImage(directory=out, manifest=manifest)
