"""Base images: checked before QEMU may open them, then cached by checksum.

An image is data from a user, and qcow2 can point QEMU at any file on the host: a
backing file (``/etc/shadow`` as the backing of a "disk"), an external data file. So
every image is read by ``qemu-img info --output=json`` (under ``prlimit``, as Nova
does, since a crafted header can make it allocate without bound) and refused unless:

- its format is raw or qcow2, and it is the format the caller declared (a "raw"
  image whose bytes are a qcow2 header is the classic way in);
- it has no backing file and no external data file, is not encrypted or corrupt;
- its virtual size fits the flavor's root disk.

A refusal is ``ImageRefused`` with a stable ``reason`` and a message that names the
cause, which the compute service shows as the server's fault (or a 400).

Accepted images are copied once into ``<state>/images/<algo>-<digest>`` (read-only),
hashed on the way; overlays then use the copy as their backing file, so deleting the
image from the image service never breaks a guest (Nova's ``_base``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgefed.drivers.qemu.errors import ImageRefused, ToolFailed
from edgefed.drivers.qemu.tools import run_tool

FORMATS = ("raw", "qcow2")
DEFAULT_ALGORITHM = "sha256"
# qemu-img info's limits: Nova's (nova.virt.images.QEMU_IMG_LIMITS)
INFO_LIMITS = ("--as=1073741824", "--cpu=30")
INFO_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What ``qemu-img info`` says about an image, once accepted."""

    format: str
    virtual_size: int
    actual_size: int


@dataclass(frozen=True, slots=True)
class BaseImage:
    """An accepted image in the cache: the file overlays put under themselves."""

    path: Path
    format: str
    virtual_size: int
    checksum: str  # "<algo>:<hex>"


async def qemu_img_info(
    path: Path, *, qemu_img: str = "qemu-img", image_format: str | None = None
) -> dict[str, Any]:
    """``qemu-img info --output=json``; never opens a backing file (-U: may be in use)."""
    argv = [qemu_img, "info", "-U", "--output=json"]
    if image_format is not None:
        argv += ["-f", image_format]
    if shutil.which("prlimit"):
        argv = ["prlimit", *INFO_LIMITS, *argv]
    try:
        said = await run_tool(*argv, str(path), timeout=INFO_TIMEOUT)
        info: dict[str, Any] = json.loads(said)
    except ToolFailed as exc:
        raise ImageRefused(
            f"the image cannot be read by qemu-img: {exc}", reason="unreadable"
        ) from exc
    except ValueError as exc:
        raise ImageRefused("qemu-img info gave no JSON for the image", reason="unreadable") from exc
    return info


async def inspect_image(
    path: Path,
    *,
    declared_format: str | None = None,
    root_disk_bytes: int = 0,
    qemu_img: str = "qemu-img",
) -> ImageInfo:
    """Check an image (see the module's docstring); its facts, or ``ImageRefused``."""
    if declared_format is not None and declared_format not in FORMATS:
        raise ImageRefused(
            f"images in {declared_format} format cannot run here (raw and qcow2 can)",
            reason="unsupported_format",
        )
    probed = await qemu_img_info(path, qemu_img=qemu_img)
    found = str(probed.get("format", "?"))
    if found not in FORMATS:
        raise ImageRefused(
            f"the image's data is in {found} format, which cannot run here (raw and qcow2 can)",
            reason="unsupported_format",
        )
    if declared_format is not None and found != declared_format:
        raise ImageRefused(
            f"the image is declared {declared_format} but its data is {found}",
            reason="format_mismatch",
        )
    if "backing-filename" in probed or "full-backing-filename" in probed:
        raise ImageRefused(
            f"the image has a backing file ({probed.get('backing-filename')}); "
            "only standalone images can run here",
            reason="backing_file",
        )
    specific = probed.get("format-specific", {}).get("data", {})
    if specific.get("data-file"):
        raise ImageRefused(
            f"the image keeps its data in an external file ({specific['data-file']})",
            reason="data_file",
        )
    if specific.get("encrypt") or probed.get("encrypted"):
        raise ImageRefused("the image is encrypted", reason="encrypted")
    if specific.get("corrupt"):
        raise ImageRefused("qemu-img reports the image as corrupt", reason="corrupt")
    virtual = int(probed.get("virtual-size", 0))
    if root_disk_bytes and virtual > root_disk_bytes:
        raise ImageRefused(
            f"Flavor's disk is too small for requested image. Flavor disk is "
            f"{root_disk_bytes} bytes, image is {virtual} bytes.",
            reason="flavor_too_small",
        )
    return ImageInfo(format=found, virtual_size=virtual, actual_size=int(probed["actual-size"]))


def parse_checksum(checksum: str | None) -> tuple[str, str | None]:
    """``"sha256:ab…"`` → (algo, hex); a bare hex digest is read by its length (Glance's
    ``checksum`` is MD5, ``os_hash_value`` SHA-512); None → (sha256, None)."""
    if not checksum:
        return DEFAULT_ALGORITHM, None
    algo, sep, digest = checksum.partition(":")
    algo = algo.lower()
    if not sep:
        algo, digest = {32: "md5", 64: "sha256", 128: "sha512"}.get(len(checksum), "?"), checksum
    if algo not in hashlib.algorithms_guaranteed:
        raise ImageRefused(f"unknown checksum algorithm in {checksum!r}", reason="checksum")
    return algo, digest.lower()


class ImageCache:
    """Accepted base images under ``root``, one file per content digest."""

    def __init__(self, root: Path, *, qemu_img: str = "qemu-img") -> None:
        self.root = root
        self.qemu_img = qemu_img
        self._locks: dict[str, asyncio.Lock] = {}
        # source file (path, size, mtime) → digest, so an image without a checksum is
        # hashed once per process, not at every boot
        self._seen: dict[tuple[str, int, int], str] = {}

    def _entry(self, key: str) -> tuple[Path, Path]:
        return self.root / key, self.root / f"{key}.json"

    def _cached(self, key: str) -> BaseImage | None:
        data, facts = self._entry(key)
        try:
            recorded = json.loads(facts.read_text())
        except (OSError, ValueError):
            return None
        if not data.exists():
            return None
        return BaseImage(
            path=data,
            format=recorded["format"],
            virtual_size=recorded["virtual_size"],
            checksum=recorded["checksum"],
        )

    async def ensure(
        self,
        source: Path,
        *,
        checksum: str | None = None,
        declared_format: str | None = None,
        root_disk_bytes: int = 0,
    ) -> BaseImage:
        """The cached, checked copy of ``source``; copied and checked the first time."""
        algo, digest = parse_checksum(checksum)
        if digest is not None and (image := self._cached(f"{algo}-{digest}")) is not None:
            return await self._fits(image, declared_format, root_disk_bytes)
        stat = _stat(source)
        digest = digest or self._seen.get((str(source), stat.st_size, stat.st_mtime_ns))
        if digest is not None and (image := self._cached(f"{algo}-{digest}")) is not None:
            return await self._fits(image, declared_format, root_disk_bytes)
        self.root.mkdir(parents=True, exist_ok=True)
        lock = self._locks.setdefault(str(source), asyncio.Lock())
        async with lock:
            partial = self.root / f".{os.getpid()}-{id(lock)}.partial"
            # the source first, so a bad or oversized image fails before anything is copied;
            # the copy is checked again below, as the source may change in between
            await inspect_image(
                source,
                declared_format=declared_format,
                root_disk_bytes=root_disk_bytes,
                qemu_img=self.qemu_img,
            )
            try:
                actual = await asyncio.to_thread(_copy_hashing, source, partial, algo)
                if digest is not None and actual != digest:
                    raise ImageRefused(
                        f"the image's data does not match its {algo} checksum "
                        f"(expected {digest}, got {actual})",
                        reason="checksum",
                    )
                key = f"{algo}-{actual}"
                self._seen[(str(source), stat.st_size, stat.st_mtime_ns)] = actual
                if (image := self._cached(key)) is not None:
                    return await self._fits(image, declared_format, root_disk_bytes)
                info = await inspect_image(
                    partial, declared_format=declared_format, qemu_img=self.qemu_img
                )
                data, facts = self._entry(key)
                partial.chmod(0o444)
                partial.replace(data)
                image = BaseImage(data, info.format, info.virtual_size, f"{algo}:{actual}")
                recorded = asdict(image) | {"path": str(data)}
                facts.write_text(json.dumps(recorded, indent=1) + "\n")
            finally:
                with contextlib.suppress(FileNotFoundError):
                    partial.unlink()
        return await self._fits(image, declared_format, root_disk_bytes)

    async def _fits(
        self, image: BaseImage, declared_format: str | None, root_disk_bytes: int
    ) -> BaseImage:
        if declared_format is not None and declared_format != image.format:
            raise ImageRefused(
                f"the image is declared {declared_format} but its data is {image.format}",
                reason="format_mismatch",
            )
        if root_disk_bytes and image.virtual_size > root_disk_bytes:
            raise ImageRefused(
                f"Flavor's disk is too small for requested image. Flavor disk is "
                f"{root_disk_bytes} bytes, image is {image.virtual_size} bytes.",
                reason="flavor_too_small",
            )
        return image


def _stat(source: Path) -> os.stat_result:
    try:
        return source.stat()
    except OSError as exc:
        raise ImageRefused(
            f"the image's data is not on this host: {exc}", reason="missing"
        ) from exc


def _copy_hashing(source: Path, target: Path, algo: str) -> str:
    """Copy and hash in one pass; runs of zeros stay holes (raw images are mostly zeros)."""
    digest = hashlib.new(algo)
    zeros = bytes(1 << 20)
    with open(source, "rb") as reader, open(target, "wb") as writer:
        while chunk := reader.read(1 << 20):
            digest.update(chunk)
            if chunk == zeros[: len(chunk)]:
                writer.seek(len(chunk), os.SEEK_CUR)
            else:
                writer.write(chunk)
        writer.truncate()
    return digest.hexdigest()
