"""A file the site wrote in its data directory becomes a blob by a rename, not a copy:
its digests read once (or the caller's, of the same size), the file itself moved into
place; left to its owner when it is not placed or the content is there already."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from edgefed.core.errors import PayloadTooLarge
from edgefed.store.blobs import BlobInfo, BlobStore

DATA = b"relocated disk bytes " * 200_000  # 4 MiB: several blocks


def staged(tmp_path: Path, data: bytes = DATA) -> Path:
    path = tmp_path / "relocations" / "r.in"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def digests(data: bytes) -> BlobInfo:
    return BlobInfo(
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        sha512=hashlib.sha512(data).hexdigest(),
    )


async def test_an_adopted_file_is_digested_and_renamed_into_place(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    source = staged(tmp_path)
    inode = source.stat().st_ino

    pending = await blobs.adopt_file(source, max_bytes=1 << 30)
    assert pending.info == digests(DATA)
    assert pending.tmp_path == source and source.exists()  # not moved until placed

    final = blobs.place(pending)
    assert final == tmp_path / "images" / digests(DATA).sha256
    assert final.stat().st_ino == inode and not source.exists()  # renamed, not copied
    assert final.read_bytes() == DATA


async def test_the_caller_s_digests_are_taken_when_they_are_of_its_size(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    source = staged(tmp_path)
    known = digests(DATA)
    assert (await blobs.adopt_file(source, max_bytes=1 << 30, info=known)).info is known
    with pytest.raises(ValueError, match="its digests are of"):
        await blobs.adopt_file(source, max_bytes=1 << 30, info=digests(DATA[:-1]))
    with pytest.raises(PayloadTooLarge):
        await blobs.adopt_file(source, max_bytes=len(DATA) - 1)
    assert source.read_bytes() == DATA


async def test_an_adopted_file_is_left_to_its_owner_when_not_placed(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    source = staged(tmp_path)
    blobs.discard(await blobs.adopt_file(source, max_bytes=1 << 30))
    assert source.read_bytes() == DATA

    # The same content in place already: the blob is that one, the file stays its owner's.
    first = blobs.place(await blobs.write_bytes(DATA, max_bytes=1 << 30))
    assert blobs.place(await blobs.adopt_file(source, max_bytes=1 << 30)) == first
    assert source.read_bytes() == DATA
