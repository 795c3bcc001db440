"""A guest's disks: qcow2 overlays on cached bases, and standalone copies of them.

The root disk is a qcow2 overlay whose backing file is the cached base image
(``images.py``), sized to the flavor's root disk (or to the image when the flavor says
0, as Nova does): creating it costs milliseconds whatever the image's size, and the
base is never written. Ephemeral and swap disks are overlays too, on a formatted base
made once per size (``ephemeral-<N>G.ext4`` with the label ``ephemeral0`` that
cloud-init mounts; ``swap-<N>M`` made by ``mkswap``), as Nova's ``_base`` holds them.

A snapshot of a stopped guest is ``qemu-img convert``: every layer folded into one
qcow2 with no backing file, which boots anywhere (a running guest's copy is a QMP
backup job, in ``transfer.py``). Not compressed, as Nova's default: only allocated
clusters are written (sparse), and zlib on every cluster cost 40 times the copy
(docs/bench.md, relocation). ``join_layers`` puts a layer of changes (``layers.py``)
on top of such a copy, at the site a guest relocates to.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from edgefed.drivers.qemu.images import BaseImage
from edgefed.drivers.qemu.tools import run_tool

GiB = 1024**3
MiB = 1024**2
EPHEMERAL_LABEL = "ephemeral0"
TOOL_TIMEOUT = 120.0
CONVERT_TIMEOUT = 3600.0
Formatter = Callable[[Path], Awaitable[None]]


async def create_overlay(
    path: Path, *, base: Path, base_format: str, size_bytes: int, qemu_img: str = "qemu-img"
) -> None:
    """A qcow2 at ``path`` over ``base`` (recorded with its format, never probed)."""
    await run_tool(
        qemu_img, "create", "-q", "-f", "qcow2", "-F", base_format, "-b", str(base),
        str(path), str(size_bytes), timeout=TOOL_TIMEOUT,
    )  # fmt: skip


async def create_root_disk(
    path: Path, *, base: BaseImage, root_gb: int, qemu_img: str = "qemu-img"
) -> int:
    """The root overlay; its virtual size in bytes (the caller checked that it fits)."""
    size = max(root_gb * GiB, base.virtual_size)
    await create_overlay(
        path, base=base.path, base_format=base.format, size_bytes=size, qemu_img=qemu_img
    )
    return size


class ScratchBases:
    """Formatted bases for ephemeral and swap disks, one per size, made on first use."""

    def __init__(self, root: Path, *, qemu_img: str = "qemu-img") -> None:
        self.root = root
        self.qemu_img = qemu_img
        self._lock = asyncio.Lock()

    async def ephemeral(self, gb: int) -> Path:
        return await self._base(f"ephemeral-{gb}G.ext4", gb * GiB, _format_ext4)

    async def swap(self, mb: int) -> Path:
        return await self._base(f"swap-{mb}M", mb * MiB, _format_swap)

    async def _base(self, name: str, size: int, make: Formatter) -> Path:
        path = self.root / name
        async with self._lock:
            if path.exists():
                return path
            self.root.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{name}.partial")
            with open(partial, "wb") as sparse:
                sparse.truncate(size)
            try:
                await make(partial)
                partial.chmod(0o444)
                partial.replace(path)
            finally:
                partial.unlink(missing_ok=True)
        return path

    async def overlay(self, path: Path, base: Path) -> None:
        await create_overlay(
            path,
            base=base,
            base_format="raw",
            size_bytes=base.stat().st_size,
            qemu_img=self.qemu_img,
        )


async def _format_ext4(path: Path) -> None:
    await run_tool(
        "mkfs.ext4", "-q", "-F", "-L", EPHEMERAL_LABEL,
        "-E", "lazy_itable_init=1,lazy_journal_init=1", str(path), timeout=TOOL_TIMEOUT,
    )  # fmt: skip


async def _format_swap(path: Path) -> None:
    await run_tool("mkswap", "-q", str(path), timeout=TOOL_TIMEOUT)


async def convert_standalone(
    source: Path, target: Path, *, qemu_img: str = "qemu-img", force_share: bool = False
) -> None:
    """A qcow2 copy of ``source`` and everything under it, at ``target``, sparse.
    ``force_share``: ``source`` is a layer a running QEMU holds read-only (frozen)."""
    partial = target.with_name(f".{target.name}.partial")
    shared = ["-U"] if force_share else []
    try:
        await run_tool(
            qemu_img, "convert", *shared, "-O", "qcow2", "-f", "qcow2", str(source),
            str(partial), timeout=CONVERT_TIMEOUT,
        )  # fmt: skip
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


async def join_layers(base: Path, changes: Path, *, qemu_img: str = "qemu-img") -> None:
    """``changes`` (a qcow2 layer, whatever backing file it names) written into
    ``base``: its backing set to ``base`` without reading either (``rebase -u``: it was
    made on the same content), then committed into it. Doing it again does the same."""
    await run_tool(
        qemu_img, "rebase", "-u", "-f", "qcow2", "-F", "qcow2", "-b", str(base.resolve()),
        str(changes), timeout=TOOL_TIMEOUT,
    )  # fmt: skip
    await run_tool(
        qemu_img, "commit", "-q", "-d", "-f", "qcow2", str(changes), timeout=CONVERT_TIMEOUT
    )
