"""Content-addressed files: where image data lives, written durably before it is named.

A blob is ``<data dir>/images/<sha256 hex>``: identical data is stored once and a blob
can be verified by its name. It is written to ``images/tmp/``, fsync'd, renamed into
place and the directory fsync'd *before* the row that points to it is committed, so an
image an API answer called ``active`` survives ``kill -9``. The image store (and the
sync engine, which fetches blobs from other sites) write through ``BlobStore``. A file
the site wrote itself in its data directory (a relocated disk) is not copied: it is
renamed into place the same way (``BlobStore.adopt_file``).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgefed.core.errors import PayloadTooLarge
from edgefed.core.files import fsync_dir, fsync_path

CHUNK_SIZE = 1 << 20
_TMP_DIR = "tmp"


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What was learnt while writing a blob: its size and its three digests."""

    sha256: str
    size: int
    md5: str
    sha512: str


class _Hasher:
    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha512 = hashlib.sha512()
        self.size = 0

    async def update(self, data: bytes, *, also: Callable[[bytes], object] | None = None) -> None:
        """The three digests of ``data`` side by side in threads, and ``also`` (the
        file's write): hashlib lets go of the GIL for a MiB, so each takes a core (215 MiB:
        1.35 s one after the other, 0.7 s on two cores; a relocation's commit waits for
        them, docs/bench.md)."""
        updates: list[Callable[[bytes], object]] = [
            self.sha256.update,
            self.md5.update,
            self.sha512.update,
        ]
        if also is not None:
            updates.append(also)
        await asyncio.gather(*(asyncio.to_thread(update, data) for update in updates))
        self.size += len(data)

    def info(self) -> BlobInfo:
        return BlobInfo(
            sha256=self.sha256.hexdigest(),
            size=self.size,
            md5=self.md5.hexdigest(),
            sha512=self.sha512.hexdigest(),
        )


@dataclass
class PendingBlob:
    """A blob written and fsync'd to a temp file, not yet in place (see ``BlobStore``);
    ``adopted``: the caller's own file (``BlobStore.adopt_file``), renamed into place
    and left where it is, not removed, when the blob is not placed."""

    tmp_path: Path
    info: BlobInfo
    adopted: bool = False


@dataclass
class BlobStore:
    """Content-addressed files under ``<data_dir>/images``: ``<sha256 hex>`` each."""

    data_dir: Path
    root: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.data_dir / "images"

    def path(self, sha256: str) -> Path:
        return self.root / sha256

    def _tmp_dir(self) -> Path:
        tmp = self.root / _TMP_DIR
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp

    async def write_stream(
        self, chunks: AsyncIterable[bytes], *, max_bytes: int, label: str = "blob"
    ) -> PendingBlob:
        """Write ``chunks`` to a temp file, hashing them; PayloadTooLarge past ``max_bytes``.

        The data never sits in memory beyond one buffered megabyte; file writes and
        hashing run in a worker thread so the event loop keeps serving.
        """
        tmp = self._tmp_dir() / f"{label}.{uuid.uuid4().hex}.part"
        hasher = _Hasher()
        fh = await asyncio.to_thread(open, tmp, "wb")
        try:
            buffer = bytearray()
            async for chunk in chunks:
                if not chunk:
                    continue
                buffer += chunk
                if hasher.size + len(buffer) > max_bytes:
                    raise PayloadTooLarge(
                        f"Image data exceeds the size limit of this site ({max_bytes} bytes)."
                    )
                if len(buffer) >= CHUNK_SIZE:
                    data, buffer = bytes(buffer), bytearray()
                    await hasher.update(data, also=fh.write)
            if buffer:
                await hasher.update(bytes(buffer), also=fh.write)

            def sync() -> None:
                fh.flush()
                os.fsync(fh.fileno())
                fh.close()

            await asyncio.to_thread(sync)
        except BaseException:
            fh.close()
            tmp.unlink(missing_ok=True)
            raise
        return PendingBlob(tmp_path=tmp, info=hasher.info())

    async def write_bytes(self, data: bytes, *, max_bytes: int) -> PendingBlob:
        async def one() -> AsyncIterable[bytes]:
            for i in range(0, len(data), CHUNK_SIZE):
                yield data[i : i + CHUNK_SIZE]

        return await self.write_stream(one(), max_bytes=max_bytes)

    async def write_file(self, source: Path, *, max_bytes: int) -> PendingBlob:
        async def chunks() -> AsyncIterable[bytes]:
            fh = await asyncio.to_thread(open, source, "rb")
            try:
                while True:
                    chunk = await asyncio.to_thread(fh.read, CHUNK_SIZE)
                    if not chunk:
                        return
                    yield chunk
            finally:
                fh.close()

        return await self.write_stream(chunks(), max_bytes=max_bytes)

    async def adopt_file(
        self, source: Path, *, max_bytes: int, info: BlobInfo | None = None
    ) -> PendingBlob:
        """``source``, a file the caller wrote on the data directory's file system and
        gives up, as a blob that ``place`` renames into place instead of a copy (on
        another file system: copied, as ``write_file``). Its digests: ``info`` when the
        caller computed them as it wrote the file (its size checked), else read here,
        the three side by side; the file is fsync'd first."""
        size = (await asyncio.to_thread(os.stat, source)).st_size
        if size > max_bytes:
            raise PayloadTooLarge(
                f"Image data exceeds the size limit of this site ({max_bytes} bytes)."
            )
        if info is not None and info.size != size:
            raise ValueError(f"{source} has {size} bytes, its digests are of {info.size}")
        await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        if (await asyncio.to_thread(os.stat, self.root)).st_dev != (
            await asyncio.to_thread(os.stat, source.parent)
        ).st_dev:
            return await self.write_file(source, max_bytes=max_bytes)
        await asyncio.to_thread(fsync_path, source)
        if info is None:
            info = await self.digest_file(source)
        return PendingBlob(tmp_path=source, info=info, adopted=True)

    async def digest_file(self, source: Path) -> BlobInfo:
        """The three digests of a file, side by side in threads, the next MiB read
        meanwhile."""
        hasher = _Hasher()
        fh = await asyncio.to_thread(open, source, "rb")
        try:
            block = await asyncio.to_thread(fh.read, CHUNK_SIZE)
            while block:
                _, block = await asyncio.gather(
                    hasher.update(block), asyncio.to_thread(fh.read, CHUNK_SIZE)
                )
        finally:
            fh.close()
        return hasher.info()

    def place(self, pending: PendingBlob) -> Path:
        """Rename the temp file into place (or drop it: the content is already there;
        an adopted file is left to its owner then)."""
        final = self.path(pending.info.sha256)
        if final.exists():
            if not pending.adopted:
                pending.tmp_path.unlink(missing_ok=True)
        else:
            os.replace(pending.tmp_path, final)
            fsync_dir(self.root)
            if pending.adopted:  # its old name gone for good too
                fsync_dir(pending.tmp_path.parent)
        return final

    def discard(self, pending: PendingBlob) -> None:
        if not pending.adopted:
            pending.tmp_path.unlink(missing_ok=True)

    def remove(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def clear_temp_files(self) -> int:
        tmp = self.root / _TMP_DIR
        if not tmp.is_dir():
            return 0
        removed = 0
        for part in tmp.iterdir():
            part.unlink(missing_ok=True)
            removed += 1
        return removed
