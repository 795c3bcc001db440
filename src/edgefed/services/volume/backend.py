"""Where a volume's bytes live: the ``VolumeBackend`` seam, and its file implementation.

The API records volumes; a backend holds their data. ``FileVolumeBackend`` keeps each
volume as a sparse raw file in the site's data directory (``volumes/<id>.raw``) and
each snapshot as a sparse copy (``volumes/snapshots/<id>.raw``), fsync'd (file and
directory) before the call returns, so a create answered survives a crash. It is the
site's own disk: the host agents' storage pools (files on the hosts, QMP hot-plug,
NBD across sites: docs/volume.md) come behind the same Protocol later.

A volume made from an image gets the image's bytes: a raw image is copied (its data
extents), another format is converted to raw by ``qemu-img``, once ``standalone`` found
that it reads no other file: a tenant's qcow2 whose backing file is ``/etc/shadow`` or
the site's key, a VMDK whose extents are host files, would otherwise have qemu-img copy
those files into a volume the tenant then reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from pathlib import Path
from typing import Any, Protocol

from edgefed.core.files import fsync_dir

GIB = 1 << 30


class VolumeBackend(Protocol):
    async def create(self, *, volume_id: str, size_gb: int) -> None:
        """Allocate an empty volume of ``size_gb``, durable before returning."""

    async def clone(self, *, source: str, volume_id: str, size_gb: int) -> None:
        """A new volume with the data of volume ``source`` (or of the snapshot
        ``snapshot:<id>``), grown to ``size_gb``."""

    async def image_size(self, *, image_file: Path, disk_format: str) -> int:
        """The bytes a volume needs to hold the image (its virtual size); ValueError
        when the image cannot be read in that format."""

    async def write_image(
        self, *, volume_id: str, image_file: Path, disk_format: str, size_gb: int
    ) -> None:
        """A new volume of ``size_gb`` holding the image's bytes, as raw."""

    async def snapshot(self, *, volume_id: str, snapshot_id: str) -> None:
        """Keep the volume's data as it is now, as snapshot ``snapshot_id``."""

    async def extend(self, *, volume_id: str, size_gb: int) -> None: ...

    async def delete(self, *, volume_id: str) -> None:
        """Drop the volume's data (nothing to do if there is none)."""

    async def delete_snapshot(self, *, snapshot_id: str) -> None: ...

    def connection_info(self, *, volume_id: str, mode: str) -> dict[str, Any]:
        """What a host needs to reach the volume (os-brick's ``connection_info``)."""

    def space(self) -> tuple[int, int]:
        """(bytes the pool's storage holds in all, bytes free now)."""

    async def export_image(self, *, volume_id: str, disk_format: str, directory: Path) -> Path:
        """A file of the volume's data in ``disk_format`` (an upload to an image reads
        it): the volume's own file for raw, else a conversion written in ``directory``;
        ValueError when it cannot be made."""


def _allocate(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        f.truncate(size)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(path.parent)


def _sparse_copy(source: Path, target: Path, size: int) -> None:
    """Copy the data extents of ``source`` only (a sparse file stays sparse), then set
    the size; fsync'd."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    with open(source, "rb") as src, open(tmp, "wb") as dst:
        end = os.fstat(src.fileno()).st_size
        offset = 0
        while offset < end:
            try:
                offset = os.lseek(src.fileno(), offset, os.SEEK_DATA)
            except OSError:
                break  # no data after offset: the rest is a hole
            hole = os.lseek(src.fileno(), offset, os.SEEK_HOLE)
            while offset < hole:
                chunk = os.pread(src.fileno(), min(8 << 20, hole - offset), offset)
                if not chunk:
                    break
                os.pwrite(dst.fileno(), chunk, offset)
                offset += len(chunk)
        dst.truncate(max(size, end))
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, target)
    fsync_dir(target.parent)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        fsync_dir(path.parent)


async def _qemu_img(*argv: str, timeout: float = 600.0) -> str:
    """Run ``qemu-img``; ValueError with what it said when it fails or is missing."""
    try:
        proc = await asyncio.create_subprocess_exec(
            "qemu-img", *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
    except FileNotFoundError as exc:
        raise ValueError("qemu-img is not installed on this site") from exc
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError as exc:
        proc.kill()
        await proc.wait()
        raise ValueError(f"qemu-img {argv[0]} took over {timeout}s") from exc
    if proc.returncode != 0:
        raise ValueError(err.decode(errors="replace").strip() or f"qemu-img {argv[0]} failed")
    return out.decode()


async def probe(image_file: Path, disk_format: str) -> dict[str, Any]:
    """``qemu-img info`` of a file read as ``disk_format`` (never opening a backing
    file); ValueError when it cannot be read so."""
    out = await _qemu_img(
        "info", "-U", "-f", qemu_format(disk_format), "--output=json", str(image_file)
    )
    found: dict[str, Any] = json.loads(out)
    return found


async def standalone(image_file: Path, disk_format: str) -> dict[str, Any]:
    """``probe``, and ValueError unless the file holds its data alone: no backing file,
    no external data file, no extent in another file, not encrypted."""
    info = await probe(image_file, disk_format)
    specific = (info.get("format-specific") or {}).get("data") or {}
    backing = info.get("backing-filename") or info.get("full-backing-filename")
    if backing:
        raise ValueError(f"it has a backing file ({backing}); only standalone images are taken")
    if specific.get("data-file"):
        raise ValueError(f"it keeps its data in another file ({specific['data-file']})")
    own = str(image_file)
    for extent in specific.get("extents") or []:
        if isinstance(extent, dict) and extent.get("filename") not in (None, own):
            raise ValueError(f"it has an extent in another file ({extent.get('filename')})")
    if info.get("encrypted") or specific.get("encrypt"):
        raise ValueError("it is encrypted")
    return info


def _settle(tmp: Path, target: Path, size: int) -> None:
    """Grow ``tmp`` to ``size``, fsync it, and put it in place of ``target``."""
    with open(tmp, "r+b") as f:
        if os.fstat(f.fileno()).st_size < size:
            f.truncate(size)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    fsync_dir(target.parent)


# Glance's disk formats as qemu-img names them (the others are the same).
_QEMU_NAMES = {"vhd": "vpc"}


def qemu_format(disk_format: str) -> str:
    return _QEMU_NAMES.get(disk_format, disk_format)


class FileVolumeBackend:
    """Volumes as sparse raw files under ``root`` (the site's ``data_dir/volumes``)."""

    def __init__(self, root: Path):
        self.root = root

    def volume_path(self, volume_id: str) -> Path:
        return self.root / f"{volume_id}.raw"

    def space(self) -> tuple[int, int]:
        self.root.mkdir(parents=True, exist_ok=True)
        found = os.statvfs(self.root)
        return found.f_blocks * found.f_frsize, found.f_bavail * found.f_frsize

    def snapshot_path(self, snapshot_id: str) -> Path:
        return self.root / "snapshots" / f"{snapshot_id}.raw"

    def _source(self, source: str) -> Path:
        kind, _, ident = source.partition(":")
        return self.snapshot_path(ident) if kind == "snapshot" else self.volume_path(source)

    async def create(self, *, volume_id: str, size_gb: int) -> None:
        await asyncio.to_thread(_allocate, self.volume_path(volume_id), size_gb * GIB)

    async def clone(self, *, source: str, volume_id: str, size_gb: int) -> None:
        origin = self._source(source)
        target = self.volume_path(volume_id)
        if origin.exists():
            await asyncio.to_thread(_sparse_copy, origin, target, size_gb * GIB)
        else:  # a source recorded before its data was kept here
            await asyncio.to_thread(_allocate, target, size_gb * GIB)

    async def image_size(self, *, image_file: Path, disk_format: str) -> int:
        if disk_format == "raw":
            return image_file.stat().st_size
        info = await standalone(image_file, disk_format)
        return int(info["virtual-size"])

    async def write_image(
        self, *, volume_id: str, image_file: Path, disk_format: str, size_gb: int
    ) -> None:
        target = self.volume_path(volume_id)
        if disk_format == "raw":
            await asyncio.to_thread(_sparse_copy, image_file, target, size_gb * GIB)
            return
        await standalone(image_file, disk_format)  # what qemu-img convert will read
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        await _qemu_img(
            "convert", "-f", qemu_format(disk_format), "-O", "raw", str(image_file), str(tmp)
        )
        await asyncio.to_thread(_settle, tmp, target, size_gb * GIB)

    async def snapshot(self, *, volume_id: str, snapshot_id: str) -> None:
        origin = self.volume_path(volume_id)
        size = origin.stat().st_size if origin.exists() else 0
        if origin.exists():
            await asyncio.to_thread(_sparse_copy, origin, self.snapshot_path(snapshot_id), size)
        else:
            await asyncio.to_thread(_allocate, self.snapshot_path(snapshot_id), size)

    async def extend(self, *, volume_id: str, size_gb: int) -> None:
        await asyncio.to_thread(_allocate, self.volume_path(volume_id), size_gb * GIB)

    async def delete(self, *, volume_id: str) -> None:
        await asyncio.to_thread(_remove, self.volume_path(volume_id))

    async def delete_snapshot(self, *, snapshot_id: str) -> None:
        await asyncio.to_thread(_remove, self.snapshot_path(snapshot_id))

    def connection_info(self, *, volume_id: str, mode: str) -> dict[str, Any]:
        return {
            "driver_volume_type": "local",
            "data": {
                "device_path": str(self.volume_path(volume_id)),
                "volume_id": volume_id,
                "access_mode": mode,
                "encrypted": False,
            },
        }

    async def export_image(self, *, volume_id: str, disk_format: str, directory: Path) -> Path:
        source = self.volume_path(volume_id)
        if not source.exists():
            raise ValueError(f"volume {volume_id} has no data on this site")
        if disk_format == "raw":
            return source
        target = directory / f"{volume_id}.{disk_format}"
        await _qemu_img(
            "convert", "-f", "raw", "-O", qemu_format(disk_format), str(source), str(target)
        )
        return target
