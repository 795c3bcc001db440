"""Direct kernel boot without the boot loader's detour: a bzImage's ELF, entered by PVH.

A guest booted with ``-kernel bzImage`` (an image with ``kernel_id``) goes through
SeaBIOS, the kernel's real-mode setup and its decompressor before Linux's first line;
under TCG that costs most of a second (docs/bench.md, ``qemu_boot``). Kernels built
with ``CONFIG_PVH`` (Debian's and Ubuntu's are) carry an ELF note
``XEN_ELFNOTE_PHYS32_ENTRY``: QEMU loads such an uncompressed ``vmlinux`` itself and
jumps to that entry in 32-bit protected mode, with the initrd and command line as
before. Firecracker and Cloud Hypervisor boot the same way.

``pvh_kernel`` extracts the ELF from a cached bzImage once (the payload's compression
read from its magic: gzip, xz, bzip2 and lzma by the standard library, lz4 and zstd by
their Debian tools) and keeps it next to the cached image; a kernel without the note,
a compression it cannot read or any error keep the bzImage (and the answer is
remembered, so nothing is tried twice). The guest boots either way.
"""

from __future__ import annotations

import bz2
import contextlib
import logging
import lzma
import os
import shutil
import struct
import subprocess
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

log = logging.getLogger("edgefed.qemu.pvh")

CHUNK = 1 << 20
ELF_SUFFIX = ".pvh-elf"  # the extracted kernel, next to the cached bzImage
NONE_SUFFIX = ".pvh-none"  # marker: this kernel boots as it is
XEN_ELFNOTE_PHYS32_ENTRY = 18
PT_NOTE = 4
# The setup header's fields (Documentation/arch/x86/boot.rst).
HDRS_MAGIC, HDRS_AT = b"HdrS", 0x202
MAX_ELF_BYTES = 512 << 20  # a decompressed kernel is tens of MiB; more is not a kernel


class _Decompressor(Protocol):
    def decompress(self, data: bytes) -> bytes: ...


def _stdlib(make: Callable[[], _Decompressor]) -> Callable[[bytes, BinaryIO], None]:
    def run(payload: bytes, out: BinaryIO) -> None:
        engine = make()
        written = 0
        for start in range(0, len(payload), CHUNK):
            try:
                piece = engine.decompress(payload[start : start + CHUNK])
            except EOFError:
                break  # the stream ended; the kernel's trailing size field follows
            written += len(piece)
            if written > MAX_ELF_BYTES:
                raise ValueError("the decompressed kernel is too large")
            out.write(piece)
            if getattr(engine, "eof", False):
                break

    return run


def _tool(*argv: str) -> Callable[[bytes, BinaryIO], None]:
    def run(payload: bytes, out: BinaryIO) -> None:
        if shutil.which(argv[0]) is None:
            raise ValueError(f"{argv[0]} is not installed")
        # A kernel image is a tenant's upload: what the tool writes is capped by the
        # file size limit (prlimit), so a decompression bomb fills no disk. The kernel
        # appends the decompressed size after the stream, which a tool may complain
        # about after writing everything: the ELF check that follows judges the output,
        # not the tool's exit status.
        limited = ["prlimit", f"--fsize={MAX_ELF_BYTES}", *argv]
        subprocess.run(  # noqa: S603 - our own tools and arguments
            limited, input=payload, stdout=out, stderr=subprocess.DEVNULL, timeout=60
        )

    return run


# Payload magic -> how to decompress it.
DECOMPRESSORS: tuple[tuple[bytes, Callable[[bytes, BinaryIO], None]], ...] = (
    (b"\x1f\x8b", _stdlib(lambda: zlib.decompressobj(16 + zlib.MAX_WBITS))),
    (b"\xfd7zXZ\x00", _stdlib(lambda: lzma.LZMADecompressor(lzma.FORMAT_XZ))),
    (b"BZh", _stdlib(bz2.BZ2Decompressor)),
    (b"\x5d\x00\x00", _stdlib(lambda: lzma.LZMADecompressor(lzma.FORMAT_ALONE))),
    (b"\x02\x21\x4c\x18", _tool("lz4", "-d", "-c")),
    (b"\x28\xb5\x2f\xfd", _tool("zstd", "-d", "-c", "-q")),
)


def bzimage_payload(image: bytes) -> bytes | None:
    """The compressed kernel inside a bzImage (boot protocol 2.08+), or None."""
    if len(image) < 0x250 or image[HDRS_AT : HDRS_AT + 4] != HDRS_MAGIC:
        return None
    (version,) = struct.unpack_from("<H", image, 0x206)
    if version < 0x208:
        return None
    setup_sects = image[0x1F1] or 4
    offset, length = struct.unpack_from("<II", image, 0x248)
    start = (setup_sects + 1) * 512 + offset
    payload = image[start : start + length]
    return payload if len(payload) == length else None


def _segments(fh: BinaryIO) -> Iterator[tuple[int, int, int]]:
    """(type, offset, size in the file) of each segment of a 64-bit little-endian ELF."""
    head = fh.read(64)
    if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
        return
    (phoff,) = struct.unpack_from("<Q", head, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
    for i in range(min(phnum, 64)):
        fh.seek(phoff + i * phentsize)
        header = fh.read(56)
        if len(header) < 56:
            return
        (kind,) = struct.unpack_from("<I", header, 0)
        (offset,) = struct.unpack_from("<Q", header, 8)
        (size,) = struct.unpack_from("<Q", header, 32)
        yield kind, offset, size


def _notes(fh: BinaryIO, offset: int, size: int) -> Iterator[tuple[bytes, int]]:
    """(name, type) of each note of the note segment at ``offset``."""
    fh.seek(offset)
    data = fh.read(min(size, 1 << 16))
    at = 0
    for _ in range(256):  # bounded: notes in one segment
        if at + 12 > len(data):
            return
        namesz, descsz, kind = struct.unpack_from("<III", data, at)
        yield data[at + 12 : at + 12 + namesz].rstrip(b"\0"), kind
        at += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4


def has_pvh_entry(path: Path) -> bool:
    """Whether ``path`` is a whole ELF kernel QEMU can enter by PVH: the note there and
    every segment within the file (a cut-off decompression is not a kernel)."""
    length = path.stat().st_size
    with path.open("rb") as fh:
        segments = list(_segments(fh))
        if not segments or any(offset + size > length for _, offset, size in segments):
            return False
        return any(
            name == b"Xen" and kind == XEN_ELFNOTE_PHYS32_ENTRY
            for segment, offset, size in segments
            if segment == PT_NOTE
            for name, kind in _notes(fh, offset, size)
        )


def pvh_kernel(bzimage: Path) -> Path:
    """The kernel to boot for the cached ``bzimage``: its PVH ELF when it has one (made
    on the first call), else ``bzimage`` itself."""
    elf = bzimage.with_name(bzimage.name + ELF_SUFFIX)
    none = bzimage.with_name(bzimage.name + NONE_SUFFIX)
    if elf.exists():
        return elf
    if none.exists():
        return bzimage
    try:
        if _extract(bzimage, elf):
            return elf
    except (OSError, ValueError, lzma.LZMAError, zlib.error, subprocess.SubprocessError) as exc:
        log.info("kernel %s boots as a bzImage: %s", bzimage.name, exc)
    with contextlib.suppress(OSError):
        none.touch()
    return bzimage


def _extract(bzimage: Path, elf: Path) -> bool:
    payload = bzimage_payload(bzimage.read_bytes())
    if payload is None:
        return False  # not a bzImage (perhaps an ELF already: QEMU reads that as it is)
    decompress = next((run for magic, run in DECOMPRESSORS if payload.startswith(magic)), None)
    if decompress is None:
        return False
    partial = elf.with_name(elf.name + ".part")
    try:
        with partial.open("wb") as out:
            decompress(payload, out)
            out.flush()
            os.fsync(out.fileno())
        if partial.stat().st_size >= MAX_ELF_BYTES or not has_pvh_entry(partial):
            return False
        os.replace(partial, elf)
        return True
    finally:
        partial.unlink(missing_ok=True)
