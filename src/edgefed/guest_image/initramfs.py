"""The guest's initramfs: busybox, the few kernel modules it needs, and ``rootfs/``.

The whole guest lives in the initramfs (``/init`` is busybox init, ``/etc/rc`` the boot
script), so it needs no root file system and boots the same from a disk's boot loader
or by direct kernel boot. Modules are the closure of ``MODULES`` over their ``depends=``
entries, loaded in dependency order by ``/etc/rc`` from ``lib/modules/load-order``.
"""

from __future__ import annotations

import gzip
import io
import stat
import subprocess
import tempfile
from pathlib import Path

from edgefed.guest_image.debs import BuildError

# What the guest needs beyond the kernel's built-ins: virtio PCI, disks and NICs; the
# config drive's file systems (ISO 9660, or FAT as Nova can also write it); the ACPI
# power button, so that a soft stop powers the guest off.
MODULES = (
    "virtio",
    "virtio_ring",
    "virtio_pci_legacy_dev",
    "virtio_pci_modern_dev",
    "virtio_pci",
    "virtio_mmio",
    "failover",
    "net_failover",
    "virtio_net",
    "virtio_blk",
    "isofs",
    "fat",
    "vfat",
    "nls_cp437",
    "nls_iso8859-1",
    "nls_ascii",
    "evdev",
    "button",
)
SIGNATURE_MAGIC = b"~Module signature appended~\n"
DIRECTORIES = (
    "bin",
    "dev",
    "etc",
    "lib",
    "lib/modules",
    "mnt",
    "proc",
    "root",
    "run",
    "sys",
    "tmp",
    "var",
    "usr",
    "usr/share",
    "boot",
)


def module_depends(module: bytes) -> list[str]:
    """The ``depends=`` entry of a module's .modinfo section (NUL-separated strings)."""
    start = module.find(b"\0depends=")
    if start < 0:
        return []
    value = module[start + len(b"\0depends=") : module.index(b"\0", start + 1)].decode()
    return [name for name in value.split(",") if name]


def strip_signature(module: bytes) -> bytes:
    """Drop a module's appended PKCS#7 signature.

    The kernel then skips the RSA check, which is slow under TCG; it logs "module
    verification failed" once and taints itself, as signature enforcement is off. The
    trailer is ``struct module_signature`` (12 bytes, the signature's length last, big
    endian) before the magic.
    """
    if not module.endswith(SIGNATURE_MAGIC):
        return module
    end = len(module) - len(SIGNATURE_MAGIC)
    signature_length = int.from_bytes(module[end - 4 : end], "big")
    return module[: end - 12 - signature_length]


def select_modules(available: dict[str, bytes]) -> dict[str, bytes]:
    """``MODULES`` and everything they depend on, by the names modinfo uses (``_``)."""
    chosen: dict[str, bytes] = {}
    todo = [name.replace("-", "_") for name in MODULES]
    while todo:
        name = todo.pop()
        if name in chosen:
            continue
        if name not in available:
            raise BuildError(f"kernel module {name} is not in the kernel package")
        chosen[name] = available[name]
        todo.extend(module_depends(available[name]))
    return chosen


def load_order(modules: dict[str, bytes]) -> list[str]:
    """Dependencies first; ties in name order, so the build is reproducible."""
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        for dependency in module_depends(modules[name]):
            visit(dependency)
        order.append(name)

    for name in sorted(modules):
        visit(name)
    return order


class Cpio:
    """A minimal ``newc`` archive writer: enough for an initramfs (no hard links)."""

    def __init__(self) -> None:
        self._buffer = io.BytesIO()
        self._inode = 1

    def _entry(
        self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
    ) -> None:
        encoded = name.encode() + b"\0"
        fields = (self._inode, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0)
        self._inode += 1
        self._buffer.write(("070701" + "".join(f"{v:08x}" for v in fields)).encode() + encoded)
        self._buffer.write(b"\0" * (-(110 + len(encoded)) % 4))
        self._buffer.write(data)
        self._buffer.write(b"\0" * (-len(data) % 4))

    def directory(self, name: str) -> None:
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name: str, target: str) -> None:
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name: str, major: int, minor: int) -> None:
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self._buffer.getvalue()


def busybox_applets(busybox: bytes) -> list[str]:
    with tempfile.TemporaryDirectory() as scratch:
        binary = Path(scratch) / "busybox"
        binary.write_bytes(busybox)
        binary.chmod(0o755)
        listed = subprocess.run(  # noqa: S603 - the busybox we are packing
            [str(binary), "--list"], check=True, capture_output=True, text=True, timeout=60
        ).stdout
    return [applet for applet in listed.split() if applet != "busybox"]


def build_initramfs(busybox: bytes, modules: dict[str, bytes], rootfs: Path) -> bytes:
    """The gzip-compressed initramfs (busybox picks its applet by argv[0])."""
    archive = Cpio()
    for directory in DIRECTORIES:
        archive.directory(directory)
    archive.chardev("dev/console", 5, 1)
    archive.chardev("dev/null", 1, 3)
    archive.symlink("sbin", "bin")
    archive.symlink("usr/bin", "../bin")
    archive.symlink("usr/sbin", "../bin")
    archive.file("bin/busybox", busybox, 0o755)
    for applet in busybox_applets(busybox):
        archive.symlink(f"bin/{applet}", "busybox")
    archive.symlink("init", "bin/busybox")
    for name in sorted(modules):
        archive.file(f"lib/modules/{name}.ko", strip_signature(modules[name]))
    archive.file("lib/modules/load-order", ("\n".join(load_order(modules)) + "\n").encode())
    listed: set[str] = set(DIRECTORIES)
    for path in sorted(rootfs.rglob("*")):
        relative = path.relative_to(rootfs).as_posix()
        if path.is_dir():
            if relative not in listed:
                archive.directory(relative)
                listed.add(relative)
            continue
        data = path.read_bytes()
        # scripts are executable whatever mode the checkout gave them
        archive.file(relative, data, 0o755 if data.startswith(b"#!") else 0o644)
    return gzip.compress(archive.finish(), compresslevel=6, mtime=0)
