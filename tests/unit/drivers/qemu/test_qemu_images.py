"""Images are checked before QEMU may open them; accepted ones are cached by checksum;
overlays, ephemeral and swap disks, and standalone copies are what they claim."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest
from qemu_support import needs_qemu_img

from edgefed.drivers.qemu import disks
from edgefed.drivers.qemu.errors import ImageRefused
from edgefed.drivers.qemu.images import ImageCache, inspect_image, parse_checksum

pytestmark = needs_qemu_img
GiB = 1024**3


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True)


def info(path: Path) -> dict:
    out = subprocess.run(
        ["qemu-img", "info", "-U", "--output=json", str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


def raw_image(path: Path, size: int = 4 * 1024 * 1024) -> Path:
    with open(path, "wb") as f:
        f.write(b"\xeb\x63\x90edgefed" + bytes(505) + b"\x55\xaa")  # a boot sector of sorts
        f.truncate(size)
    return path


async def test_a_qcow2_with_a_backing_file_is_refused_naming_it(tmp_path: Path) -> None:
    image = tmp_path / "sneaky.qcow2"
    qemu_img(
        "create", "-q", "-f", "qcow2", "-u", "-F", "raw", "-b", "/etc/shadow", str(image), "1G"
    )
    with pytest.raises(ImageRefused, match="backing file \\(/etc/shadow\\)") as refused:
        await inspect_image(image)
    assert refused.value.reason == "backing_file"


async def test_a_qcow2_with_an_external_data_file_is_refused(tmp_path: Path) -> None:
    image = tmp_path / "external.qcow2"
    qemu_img(
        "create", "-q", "-f", "qcow2", "-o", f"data_file={tmp_path / 'd.raw'}", str(image), "64M"
    )
    with pytest.raises(ImageRefused, match="external file") as refused:
        await inspect_image(image)
    assert refused.value.reason == "data_file"


async def test_an_image_larger_than_the_flavor_is_refused_with_both_sizes(tmp_path: Path) -> None:
    image = tmp_path / "huge.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(image), "1T")
    with pytest.raises(ImageRefused) as refused:
        await inspect_image(image, root_disk_bytes=GiB)
    assert refused.value.reason == "flavor_too_small"
    assert "Flavor disk is 1073741824 bytes, image is 1099511627776 bytes" in str(refused.value)


async def test_an_unknown_format_is_refused_naming_it(tmp_path: Path) -> None:
    image = tmp_path / "disk.vdi"
    qemu_img("create", "-q", "-f", "vdi", str(image), "64M")
    with pytest.raises(ImageRefused, match="vdi format") as refused:
        await inspect_image(image)
    assert refused.value.reason == "unsupported_format"
    with pytest.raises(ImageRefused, match="vmdk format"):
        await inspect_image(raw_image(tmp_path / "x.raw"), declared_format="vmdk")


async def test_qcow2_bytes_declared_raw_are_refused(tmp_path: Path) -> None:
    image = tmp_path / "pretend.raw"
    qemu_img("create", "-q", "-f", "qcow2", str(image), "64M")
    with pytest.raises(ImageRefused, match="declared raw but its data is qcow2") as refused:
        await inspect_image(image, declared_format="raw")
    assert refused.value.reason == "format_mismatch"


async def test_raw_and_qcow2_images_are_accepted(tmp_path: Path) -> None:
    raw = await inspect_image(raw_image(tmp_path / "a.raw"), declared_format="raw")
    assert (raw.format, raw.virtual_size) == ("raw", 4 * 1024 * 1024)
    qcow2 = tmp_path / "b.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(qcow2), "1G")
    accepted = await inspect_image(qcow2, root_disk_bytes=GiB)
    assert (accepted.format, accepted.virtual_size) == ("qcow2", GiB)


async def test_the_cache_keeps_one_checked_copy_per_checksum(tmp_path: Path) -> None:
    source = raw_image(tmp_path / "a.raw", size=64 * 1024 * 1024)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    cache = ImageCache(tmp_path / "images")
    first = await cache.ensure(source, checksum=f"sha256:{digest}", declared_format="raw")
    assert first.path == tmp_path / "images" / f"sha256-{digest}"
    assert first.path.read_bytes() == source.read_bytes()
    assert first.path.stat().st_mode & 0o777 == 0o444
    assert first.path.stat().st_blocks * 512 <= 1024 * 1024  # 1 MiB of data, 63 of holes

    source.unlink()  # the image service deleted it: the cache still serves it
    again = await cache.ensure(source.with_name("gone"), checksum=f"sha256:{digest}")
    assert again == first


async def test_an_image_without_checksum_is_hashed_and_refused_on_mismatch(tmp_path: Path) -> None:
    source = raw_image(tmp_path / "a.raw")
    cache = ImageCache(tmp_path / "images")
    image = await cache.ensure(source)
    assert image.checksum == "sha256:" + hashlib.sha256(source.read_bytes()).hexdigest()
    md5 = hashlib.md5(source.read_bytes()).hexdigest()  # noqa: S324 - Glance's checksum
    assert (await cache.ensure(source, checksum=md5)).checksum == f"md5:{md5}"
    with pytest.raises(ImageRefused, match="does not match its md5 checksum") as refused:
        await cache.ensure(source, checksum="0" * 32)
    assert refused.value.reason == "checksum"
    assert not list((tmp_path / "images").glob("*.partial"))


async def test_a_cached_image_is_still_checked_against_each_flavor(tmp_path: Path) -> None:
    source = tmp_path / "big.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(source), "2G")
    cache = ImageCache(tmp_path / "images")
    await cache.ensure(source, root_disk_bytes=2 * GiB)
    with pytest.raises(ImageRefused, match="too small"):
        await cache.ensure(source, root_disk_bytes=GiB)


def test_checksums_are_read_as_glance_writes_them() -> None:
    assert parse_checksum(None) == ("sha256", None)
    assert parse_checksum("SHA256:AB") == ("sha256", "ab")
    assert parse_checksum("a" * 32) == ("md5", "a" * 32)
    assert parse_checksum("b" * 128) == ("sha512", "b" * 128)
    with pytest.raises(ImageRefused):
        parse_checksum("crc32:1234")


async def test_the_root_overlay_is_sized_to_the_flavor_or_the_image(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path / "images")
    base = await cache.ensure(raw_image(tmp_path / "a.raw"))
    await disks.create_root_disk(tmp_path / "root1.qcow2", base=base, root_gb=1)
    await disks.create_root_disk(tmp_path / "root0.qcow2", base=base, root_gb=0)
    sized, unsized = info(tmp_path / "root1.qcow2"), info(tmp_path / "root0.qcow2")
    assert sized["virtual-size"] == GiB
    assert sized["full-backing-filename"] == str(base.path)
    assert sized["backing-filename-format"] == "raw"
    assert unsized["virtual-size"] == base.virtual_size


async def test_ephemeral_and_swap_disks_are_formatted_overlays(tmp_path: Path) -> None:
    scratch = disks.ScratchBases(tmp_path / "images")
    ephemeral = await scratch.ephemeral(1)
    swap = await scratch.swap(64)
    assert await scratch.ephemeral(1) == ephemeral  # made once per size
    label = subprocess.run(
        ["e2label", str(ephemeral)], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert label == "ephemeral0"
    with open(swap, "rb") as f:
        f.seek(4096 - 10)
        assert f.read(10) == b"SWAPSPACE2"
    await scratch.overlay(tmp_path / "eph.qcow2", ephemeral)
    overlay = info(tmp_path / "eph.qcow2")
    assert overlay["virtual-size"] == GiB
    assert overlay["full-backing-filename"] == str(ephemeral)


async def test_a_standalone_copy_folds_the_layers_and_compresses(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path / "images")
    base = await cache.ensure(raw_image(tmp_path / "a.raw"))
    overlay = tmp_path / "root.qcow2"
    await disks.create_root_disk(overlay, base=base, root_gb=1)
    # the guest wrote 64 KiB of "a" at 1 MiB: into the overlay, not the base
    subprocess.run(
        ["qemu-io", "-f", "qcow2", "-c", "write -P 0x61 1M 64k", str(overlay)],
        check=True,
        capture_output=True,
    )
    copy = tmp_path / "snapshot.qcow2"
    await disks.convert_standalone(overlay, copy)
    facts = info(copy)
    assert "backing-filename" not in facts
    assert facts["virtual-size"] == GiB
    # both layers are in it: the base's boot sector and what the guest wrote
    raw_back = tmp_path / "back.raw"
    qemu_img("convert", "-f", "qcow2", "-O", "raw", str(copy), str(raw_back))
    data = raw_back.read_bytes()
    assert data[:10] == b"\xeb\x63\x90edgefed"
    assert data[1024 * 1024 : 1024 * 1024 + 65536] == b"a" * 65536
    assert facts["actual-size"] < 1024 * 1024  # compressed, and the rest is holes
