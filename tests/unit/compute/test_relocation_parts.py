"""The parts a relocation's file is named with, as the destination checks them, and a
moved volume as another site describes it: what does not add up is a 400 naming it,
before a byte is taken."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from edgefed.api.volumes import MovedVolume
from edgefed.core.errors import BadRequest, Conflict
from edgefed.services.compute.boot_checks import BOOT_FILE_FORMATS
from edgefed.services.compute.relocation_parts import _kept, arriving, named_parts

SHA = hashlib.sha256(b"x").hexdigest()


def part(kind: str, offset: int, size: int, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "offset": offset, "size": size, "sha256": SHA, **extra}


def test_parts_up_to_the_file_s_end_in_order_are_taken() -> None:
    parts = [part("volume", 100, 50, volume_id="v"), part("kernel", 150, 10)]
    assert named_parts(parts, 160) == parts
    assert named_parts(None, 160) == []


@pytest.mark.parametrize(
    "parts",
    [
        [part("volume", 100, 50)],  # ends before the file does
        [part("volume", 100, 50), part("kernel", 140, 20)],  # overlapping
        [part("swap", 100, 60)],  # no such kind
        [part("kernel", -10, 170)],  # before the disk
        [{**part("kernel", 100, 60), "sha256": "nope"}],
        "volume",
    ],
)
def test_parts_that_do_not_add_up_are_refused(parts: Any) -> None:
    with pytest.raises(BadRequest, match="Invalid part"):
        named_parts(parts, 160)


def test_a_moved_volume_keeps_what_cinder_shows_of_it() -> None:
    volume = MovedVolume(
        id="v1", name="ledger", description=None, size_gb=2, volume_type="gold",
        bootable=True, metadata={"till": "3"},
    )  # fmt: skip
    assert arriving([volume.to_json()]) == [volume]


@pytest.mark.parametrize(
    "raw",
    [
        {"id": "v1", "size": 0, "volume_type": "gold"},
        {"id": "v1", "size": True, "volume_type": "gold"},
        {"id": "v1", "size": 1},
        {"id": "v1", "size": 1, "volume_type": "gold", "metadata": {"n": 1}},
        "v1",
    ],
)
def test_a_moved_volume_described_wrong_is_refused(raw: Any) -> None:
    with pytest.raises(BadRequest, match="Invalid volumes in the relocation"):
        arriving([raw])


def test_a_kernel_in_a_format_no_guest_boots_from_is_refused() -> None:
    assert _kept(part("kernel", 0, 1), "disk_format", BOOT_FILE_FORMATS, "raw") == "raw"
    assert _kept(part("kernel", 0, 1, disk_format="aki"), "disk_format", BOOT_FILE_FORMATS,
                 "raw") == "aki"  # fmt: skip
    with pytest.raises(Conflict, match="kernel of the relocation is in disk_format 'qcow2'"):
        _kept(part("kernel", 0, 1, disk_format="qcow2"), "disk_format", BOOT_FILE_FORMATS, "raw")
