"""When a built guest image is still good (``make test`` asks before every run, so the
check reads files and runs nothing): only with a manifest of the current inputs and
every file it lists at its size; a changed rootfs file means a rebuild."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from edgefed.guest_image import build
from edgefed.guest_image.build import cache_key, up_to_date

FILES = {"vmlinuz": b"kernel" * 10, "initrd.img": b"initrd" * 20, "disk.qcow2": b"disk" * 30}


def built(out: Path, *, key: str | None = None) -> Path:
    """A finished build in ``out``, as build_guest_image leaves it."""
    out.mkdir(parents=True, exist_ok=True)
    for name, data in FILES.items():
        (out / name).write_bytes(data)
    manifest = {
        "key": key or cache_key(),
        "kernel_cmdline": build.KERNEL_CMDLINE,
        "files": {name: {"size": len(data), "sha256": "-"} for name, data in FILES.items()},
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_a_finished_build_of_these_inputs_is_up_to_date(tmp_path: Path) -> None:
    image = up_to_date(built(tmp_path / "guest"))
    assert image is not None
    assert image.initrd == tmp_path / "guest" / "initrd.img"
    assert image.kernel_cmdline == build.KERNEL_CMDLINE


def test_no_manifest_or_an_unreadable_one_is_no_image(tmp_path: Path) -> None:
    assert up_to_date(tmp_path) is None
    (tmp_path / "manifest.json").write_text("{not json")
    assert up_to_date(tmp_path) is None


def test_a_build_of_other_inputs_is_stale(tmp_path: Path) -> None:
    assert up_to_date(built(tmp_path, key="0123456789abcdef")) is None


@pytest.mark.parametrize("name", sorted(FILES))
def test_a_missing_or_cut_file_makes_the_build_stale(tmp_path: Path, name: str) -> None:
    out = built(tmp_path / "cut")
    (out / name).write_bytes(FILES[name][:-1])
    assert up_to_date(out) is None
    (out / name).unlink()
    assert up_to_date(out) is None


def test_a_changed_rootfs_file_changes_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rootfs = tmp_path / "rootfs"
    shutil.copytree(build.ROOTFS, rootfs)
    monkeypatch.setattr(build, "ROOTFS", rootfs)
    before = cache_key()
    assert cache_key() == before  # a function of the files only
    out = built(tmp_path / "guest")
    rc = rootfs / "etc" / "rc"
    script = rc.read_text()
    rc.write_text(script + "echo one more line\n")
    assert cache_key() != before
    assert up_to_date(out) is None
    rc.write_text(script)
    assert cache_key() == before
    (rootfs / "etc" / "motd").write_text("")  # a new file, even empty
    assert cache_key() != before
