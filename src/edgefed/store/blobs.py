"""Content-addressed files: where image data lives, written durably before it is named.

A blob is ``<data dir>/images/<sha256 hex>``: identical data is stored once and a blob
can be verified by its name. It is written to ``images/tmp/``, fsync'd, renamed into
place and the directory fsync'd *before* the row that points to it is committed, so an
image an API answer called ``active`` survives ``kill -9``. The image store (and the
sync engine, which fetches blobs from other sites) write through ``BlobStore``.
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
from edgefed.core.files import fsync_dir

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

    async def update(self, data: bytes, *, also: Callable[[bytes], object]) -> None:
        """The three digests of ``data`` side by side in threads, and ``also`` (the
        file's write): hashlib lets go of the GIL for a MiB, so each takes a core (215 MiB:
        1.35 s one after the other, 0.7 s on two cores; a relocation's commit waits for
        them, docs/bench.md)."""
        updates = (self.sha256.update, self.md5.update, self.sha512.update, also)
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
    """A blob written and fsync'd to a temp file, not yet in place (see ``BlobStore``)."""

    tmp_path: Path
    info: BlobInfo


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

    def place(self, pending: PendingBlob) -> Path:
        """Rename the temp file into place (or drop it: the content is already there)."""
        final = self.path(pending.info.sha256)
        if final.exists():
            pending.tmp_path.unlink(missing_ok=True)
        else:
            os.replace(pending.tmp_path, final)
            fsync_dir(self.root)
        return final

    def discard(self, pending: PendingBlob) -> None:
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
