"""Blobs are content-addressed: named by their SHA-256, stored once however often they
are written, never left half-written under their name, and refused past the size limit
without leaving a temp file behind."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgefed.core.errors import PayloadTooLarge
from edgefed.store.blobs import CHUNK_SIZE, BlobStore

DATA = b"edge image bytes " * 1000


def temp_files(blobs: BlobStore) -> list[Path]:
    tmp = blobs.root / "tmp"
    return sorted(tmp.iterdir()) if tmp.is_dir() else []


async def test_a_written_blob_is_named_by_its_digest_once_placed(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    pending = await blobs.write_bytes(DATA, max_bytes=1 << 20)

    assert pending.info.sha256 == hashlib.sha256(DATA).hexdigest()
    assert pending.info.md5 == hashlib.md5(DATA, usedforsecurity=False).hexdigest()
    assert pending.info.sha512 == hashlib.sha512(DATA).hexdigest()
    assert pending.info.size == len(DATA)
    # Not under its name until placed: a reader never sees a blob still being written.
    assert not blobs.path(pending.info.sha256).exists()
    assert temp_files(blobs) == [pending.tmp_path]

    final = blobs.place(pending)
    assert final == tmp_path / "images" / pending.info.sha256
    assert final.read_bytes() == DATA
    assert temp_files(blobs) == []


async def test_identical_data_is_stored_once(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    first = blobs.place(await blobs.write_bytes(DATA, max_bytes=1 << 20))
    second_pending = await blobs.write_bytes(DATA, max_bytes=1 << 20)
    second = blobs.place(second_pending)

    assert first == second
    assert not second_pending.tmp_path.exists()  # the copy is dropped, not renamed over
    assert [p.name for p in blobs.root.iterdir() if p.is_file()] == [first.name]


async def test_data_past_the_limit_is_refused_and_leaves_no_temp_file(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    with pytest.raises(PayloadTooLarge, match=r"size limit of this site \(100 bytes\)"):
        await blobs.write_bytes(b"x" * 101, max_bytes=100)
    assert temp_files(blobs) == []

    exactly = await blobs.write_bytes(b"x" * 100, max_bytes=100)  # the limit itself fits
    assert exactly.info.size == 100


async def test_a_stream_larger_than_a_chunk_is_refused_as_it_grows(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    sent: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        for i in range(100):
            sent.append(i)
            yield b"y" * (CHUNK_SIZE // 2)

    with pytest.raises(PayloadTooLarge):
        await blobs.write_stream(endless(), max_bytes=CHUNK_SIZE)
    # It stopped reading at the chunk that crossed the limit, not at the end.
    assert len(sent) == 3
    assert temp_files(blobs) == []


async def test_a_stream_that_fails_midway_leaves_no_temp_file(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)

    async def broken() -> AsyncIterator[bytes]:
        yield b"a" * CHUNK_SIZE
        yield b"b" * 10
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await blobs.write_stream(broken(), max_bytes=1 << 30)
    assert temp_files(blobs) == []
    assert [p for p in blobs.root.iterdir() if p.is_file()] == []


async def test_empty_chunks_are_skipped_and_chunks_join_in_order(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    parts = [b"", b"one-", b"", b"two-", b"three"]

    async def chunks() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    pending = await blobs.write_stream(chunks(), max_bytes=1 << 20, label="upload")
    assert pending.tmp_path.name.startswith("upload.")
    assert blobs.place(pending).read_bytes() == b"one-two-three"


async def test_an_empty_blob_is_a_blob(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    pending = await blobs.write_bytes(b"", max_bytes=10)
    assert pending.info.size == 0
    assert pending.info.sha256 == hashlib.sha256(b"").hexdigest()
    assert blobs.place(pending).read_bytes() == b""


async def test_a_file_is_copied_in_chunks_unchanged(tmp_path: Path) -> None:
    source = tmp_path / "disk.img"
    content = bytes(range(256)) * (CHUNK_SIZE // 256 * 2 + 3)  # two chunks and a bit
    source.write_bytes(content)
    blobs = BlobStore(tmp_path / "data")

    pending = await blobs.write_file(source, max_bytes=len(content))
    assert pending.info.size == len(content)
    assert blobs.place(pending).read_bytes() == content
    assert source.read_bytes() == content  # the source is left as it was

    with pytest.raises(PayloadTooLarge):
        await blobs.write_file(source, max_bytes=len(content) - 1)


async def test_discard_and_remove_forget_a_blob_and_tolerate_absence(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    pending = await blobs.write_bytes(DATA, max_bytes=1 << 20)
    blobs.discard(pending)
    assert temp_files(blobs) == []
    blobs.discard(pending)  # twice: nothing to do, no error

    placed = blobs.place(await blobs.write_bytes(DATA, max_bytes=1 << 20))
    blobs.remove(placed.name)
    assert not placed.exists()
    blobs.remove(placed.name)


async def test_clear_temp_files_counts_what_a_crash_left(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    assert blobs.clear_temp_files() == 0  # no tmp directory yet
    await blobs.write_bytes(b"1", max_bytes=10)
    await blobs.write_bytes(b"2", max_bytes=10)
    kept = blobs.place(await blobs.write_bytes(b"3", max_bytes=10))

    assert blobs.clear_temp_files() == 2
    assert temp_files(blobs) == []
    assert kept.read_bytes() == b"3"  # placed blobs are not temp files
