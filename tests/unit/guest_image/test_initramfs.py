"""The tiny guest's initramfs, built from stand-ins for the kernel's modules and for
busybox and read back by the system's ``cpio``: the modules it needs and their
dependencies, unsigned, loaded dependencies first; busybox's applets as links; the
console and null devices; rootfs scripts executable; the same bytes on every build."""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edgefed.guest_image.debs import BuildError
from edgefed.guest_image.initramfs import (
    MODULES,
    SIGNATURE_MAGIC,
    build_initramfs,
    load_order,
    module_depends,
    select_modules,
    strip_signature,
)

needs_cpio = pytest.mark.skipif(shutil.which("cpio") is None, reason="needs cpio to read it")


def module(name: str, *depends: str) -> bytes:
    """A stand-in for a .ko: ELF bytes around a .modinfo section's strings."""
    modinfo = f"license=GPL\0depends={','.join(depends)}\0name={name}\0vermagic=6.1\0"
    return b"\x7fELF" + b"\0" * 16 + modinfo.encode() + b"\0code"


def signed(body: bytes, signature: bytes = b"S" * 300) -> bytes:
    """``body`` with a PKCS#7 trailer as the kernel's sign-file appends it."""
    trailer = b"\0" * 8 + len(signature).to_bytes(4, "big")  # struct module_signature
    return body + signature + trailer + SIGNATURE_MAGIC


def test_a_modules_dependencies_are_read_from_its_modinfo() -> None:
    assert module_depends(module("virtio_net", "virtio", "net_failover")) == [
        "virtio",
        "net_failover",
    ]
    assert module_depends(module("virtio")) == []
    assert module_depends(b"\x7fELF no modinfo at all") == []


def test_a_signature_is_stripped_and_an_unsigned_module_kept() -> None:
    body = module("isofs")
    assert strip_signature(signed(body)) == body
    assert strip_signature(signed(body, b"")) == body
    assert strip_signature(body) == body


def kernel(**extra: bytes) -> dict[str, bytes]:
    """Every module the guest asks for, named as modinfo names them, plus ``extra``."""
    available = {name.replace("-", "_"): module(name) for name in MODULES}
    available["virtio_net"] = module("virtio_net", "virtio", "net_failover", "crc_helper")
    return {**available, "crc_helper": module("crc_helper"), "unused": module("unused"), **extra}


def test_the_guests_modules_come_with_what_they_depend_on_only() -> None:
    chosen = select_modules(kernel())
    assert "crc_helper" in chosen and "nls_iso8859_1" in chosen  # "-" read as "_"
    assert "unused" not in chosen
    assert len(chosen) == len(MODULES) + 1


def test_a_module_the_kernel_lacks_stops_the_build_naming_it() -> None:
    available = kernel()
    del available["crc_helper"]
    with pytest.raises(BuildError, match="kernel module crc_helper is not in the kernel package"):
        select_modules(available)


def test_modules_load_after_their_dependencies_in_a_stable_order() -> None:
    modules = {
        "b": module("b", "a"),
        "a": module("a", "z"),
        "z": module("z"),
        "c": module("c"),
    }
    assert load_order(modules) == ["z", "a", "b", "c"]
    assert load_order(dict(reversed(modules.items()))) == ["z", "a", "b", "c"]


# A stand-in for busybox that answers ``--list`` as busybox does.
BUSYBOX = b"#!/bin/sh\nprintf 'busybox\\nsh\\nls\\nmount\\n'\n"


def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "lib" / "edgefed").mkdir(parents=True)
    (root / "etc" / "rc").write_text("#!/bin/sh\necho boot\n")
    (root / "etc" / "inittab").write_text("::sysinit:/etc/rc\n")
    (root / "lib" / "edgefed" / "helper").write_text("#!/bin/sh\n")
    return root


def listing(archive: bytes) -> list[tuple[str, str]]:
    """``cpio -itv`` of the archive: each entry's path and its line."""
    out = subprocess.run(
        ["cpio", "-itv", "--quiet"],  # noqa: S607 - the system's cpio, the reader we trust
        input=gzip.decompress(archive), capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    return [(line.split(" -> ")[0].split()[-1], line) for line in out.splitlines()]


def shown(line: str) -> str:
    """A listing line's mode, and a link's target."""
    target = line.split(" -> ")[1] if " -> " in line else ""
    return f"{line.split()[0]} {target}".strip()


def extract(archive: bytes, name: str) -> bytes:
    return subprocess.run(
        ["cpio", "-i", "--to-stdout", "--quiet", name],  # noqa: S607
        input=gzip.decompress(archive), capture_output=True, check=True,
    ).stdout  # fmt: skip


@needs_cpio
def test_the_initramfs_is_a_cpio_archive_the_kernel_can_boot(tmp_path: Path) -> None:
    modules = {"virtio": signed(module("virtio")), "virtio_net": module("virtio_net", "virtio")}
    archive = build_initramfs(BUSYBOX, modules, rootfs(tmp_path))
    listed = listing(archive)
    entries = {name: shown(line) for name, line in listed}
    lines = dict(listed)

    assert entries["init"] == "lrwxrwxrwx bin/busybox"
    assert entries["bin/busybox"].startswith("-rwxr-xr-x")
    assert entries["bin/sh"] == entries["bin/mount"] == "lrwxrwxrwx busybox"
    assert re.search(r"^crw------- .* 5, +1 ", lines["dev/console"])
    assert re.search(r"^crw------- .* 1, +3 ", lines["dev/null"])
    assert entries["sbin"] == "lrwxrwxrwx bin"
    # Scripts run whatever mode the checkout gave them; other files are read-only data.
    assert entries["etc/rc"].startswith("-rwxr-xr-x")
    assert entries["lib/edgefed/helper"].startswith("-rwxr-xr-x")
    assert entries["etc/inittab"].startswith("-rw-r--r--")
    names = [name for name, _ in listed]
    assert names.count("etc") == names.count("lib") == 1  # shared with rootfs: listed once
    assert "lib/edgefed" in names

    assert extract(archive, "lib/modules/load-order") == b"virtio\nvirtio_net\n"
    assert extract(archive, "lib/modules/virtio.ko") == module("virtio")  # unsigned
    assert extract(archive, "etc/rc") == b"#!/bin/sh\necho boot\n"


def test_the_same_inputs_build_the_same_bytes(tmp_path: Path) -> None:
    modules = {"virtio": module("virtio")}
    first = build_initramfs(BUSYBOX, modules, rootfs(tmp_path))
    (tmp_path / "rootfs" / "etc" / "rc").touch()  # a newer mtime changes nothing
    assert build_initramfs(BUSYBOX, modules, tmp_path / "rootfs") == first
