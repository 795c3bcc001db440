"""Direct kernel boot by PVH: the ELF taken out of a bzImage once, or the bzImage kept.

Built bzImages here are the smallest the extraction reads: a setup header (boot
protocol 2.08's payload fields) in front of a compressed ELF with or without the
``XEN_ELFNOTE_PHYS32_ENTRY`` note; the real guest kernel (lz4) is read too when the
guest image is there.
"""

from __future__ import annotations

import gzip
import lzma
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from edgefed.drivers.qemu import pvh
from edgefed.drivers.qemu.pvh import ELF_SUFFIX, NONE_SUFFIX, has_pvh_entry, pvh_kernel
from edgefed.guest_image import GuestImage


def elf(*, note_type: int, padding: int = 0) -> bytes:
    """A 64-bit ELF whose one PT_NOTE segment holds a ``Xen`` note of ``note_type``."""
    name = b"Xen\0"
    note = struct.pack("<III", len(name), 4, note_type) + name + struct.pack("<I", 0x1000000)
    phoff, note_at = 64, 64 + 56
    head = bytearray(64)
    head[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", head, 0x20, phoff)
    struct.pack_into("<HH", head, 0x36, 56, 1)
    phdr = bytearray(56)
    struct.pack_into("<I", phdr, 0, 4)  # PT_NOTE
    struct.pack_into("<Q", phdr, 8, note_at)
    struct.pack_into("<Q", phdr, 32, len(note))
    return bytes(head + phdr + note) + b"\0" * padding


def bzimage(payload: bytes) -> bytes:
    setup_sects = 1
    image = bytearray((setup_sects + 1) * 512)
    image[0x1F1] = setup_sects
    image[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", image, 0x206, 0x20F)
    struct.pack_into("<II", image, 0x248, 0, len(payload))
    return bytes(image) + payload + struct.pack("<I", 12345)  # the size field the kernel appends


@pytest.mark.parametrize(
    "compress",
    [gzip.compress, lambda data: lzma.compress(data, format=lzma.FORMAT_XZ)],
    ids=["gzip", "xz"],
)
def test_a_kernel_with_a_pvh_entry_boots_as_its_elf_taken_out_once(
    tmp_path: Path, compress
) -> None:
    kernel = tmp_path / "kernel"
    inside = elf(note_type=pvh.XEN_ELFNOTE_PHYS32_ENTRY, padding=4096)
    kernel.write_bytes(bzimage(compress(inside)))
    chosen = pvh_kernel(kernel)
    assert chosen == tmp_path / ("kernel" + ELF_SUFFIX)
    assert chosen.read_bytes() == inside and has_pvh_entry(chosen)
    kernel.write_bytes(b"changed")  # the cache never changes a file: the ELF is reused
    assert pvh_kernel(kernel) == chosen
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kernel", "kernel" + ELF_SUFFIX]


def test_a_kernel_without_the_entry_or_not_a_bzimage_boots_as_it_is(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.write_bytes(bzimage(gzip.compress(elf(note_type=1))))  # another Xen note only
    assert pvh_kernel(plain) == plain
    assert (tmp_path / ("plain" + NONE_SUFFIX)).exists()  # not tried again
    for name, data in {
        "garbage": b"\0" * 4096,
        "truncated": bzimage(gzip.compress(elf(note_type=18)))[:700],
        "unknown-compression": bzimage(b"\xaa\xbb" * 100),
        "corrupt-gzip": bzimage(b"\x1f\x8b\x08\x00" + b"\xff" * 64),
    }.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert pvh_kernel(path) == path, name
    assert not list(tmp_path.glob("*" + ELF_SUFFIX)) and not list(tmp_path.glob("*.part"))


def test_a_decompression_bomb_is_cut_off_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pvh, "MAX_ELF_BYTES", 1 << 20)
    bomb = elf(note_type=pvh.XEN_ELFNOTE_PHYS32_ENTRY, padding=8 << 20)
    kernel = tmp_path / "bomb"
    kernel.write_bytes(bzimage(gzip.compress(bomb)))
    assert pvh_kernel(kernel) == kernel
    if shutil.which("lz4") is not None:  # the tools' output is capped too (prlimit)
        packed = subprocess.run(["lz4", "-l", "-c"], input=bomb, capture_output=True, check=True)
        kernel = tmp_path / "lz4-bomb"
        kernel.write_bytes(bzimage(packed.stdout))
        assert pvh_kernel(kernel) == kernel
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(NONE_SUFFIX)) == [
        "bomb",
        *(["lz4-bomb"] if shutil.which("lz4") else []),
    ]


def test_the_guest_kernel_lz4_has_its_pvh_entry_found(
    guest_image: GuestImage, tmp_path: Path
) -> None:
    kernel = tmp_path / "vmlinuz"
    shutil.copyfile(guest_image.vmlinuz, kernel)
    chosen = pvh_kernel(kernel)
    assert chosen.name == "vmlinuz" + ELF_SUFFIX and has_pvh_entry(chosen)
    assert chosen.stat().st_size > 2 * kernel.stat().st_size  # decompressed
