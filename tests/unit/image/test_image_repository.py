"""The image repository and blob store, as other services use them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from edgefed.core.errors import Conflict, PayloadTooLarge
from edgefed.store.engine import Store
from edgefed.store.image import BlobStore, ImageRepository, blob_path


@pytest.fixture
async def store(tmp_path: Path):
    s = await Store.open(f"sqlite+aiosqlite:///{tmp_path / 'site.db'}", sqlite_synchronous="NORMAL")
    try:
        yield s
    finally:
        await s.close()


async def test_create_with_bytes_is_active_with_digests(store: Store, tmp_path: Path) -> None:
    repo = ImageRepository(store)
    data = b"snapshot-bytes" * 1000
    rec = await repo.create(
        owner="p1", name="snap", properties={"image_type": "snapshot"}, data=data, data_dir=tmp_path
    )
    assert rec.status == "active"
    assert rec.size == len(data)
    assert rec.checksum == hashlib.md5(data).hexdigest()
    assert rec.os_hash_algo == "sha512"
    assert rec.os_hash_value == hashlib.sha512(data).hexdigest()
    assert blob_path(tmp_path, rec).read_bytes() == data
    assert blob_path(tmp_path, rec).name == hashlib.sha256(data).hexdigest()
    assert (await repo.get(rec.id)) == rec


async def test_create_from_file_and_dedup_and_delete(store: Store, tmp_path: Path) -> None:
    repo = ImageRepository(store)
    src = tmp_path / "disk.img"
    src.write_bytes(b"x" * (3 << 20))
    a = await repo.create(owner="p1", name="a", data_file=src, data_dir=tmp_path)
    b = await repo.create(owner="p1", name="b", data=src.read_bytes(), data_dir=tmp_path)
    assert a.blob_sha256 == b.blob_sha256
    path = blob_path(tmp_path, a)
    await repo.delete(a.id, data_dir=tmp_path)
    assert path.exists(), "still used by b"
    await repo.delete(b.id, data_dir=tmp_path)
    assert not path.exists()
    assert await repo.get(a.id) is None


async def test_duplicate_id_conflicts(store: Store) -> None:
    repo = ImageRepository(store)
    rec = await repo.create(owner="p1", name="a")
    assert rec.status == "queued"
    with pytest.raises(Conflict):
        await repo.create(owner="p1", image_id=rec.id)


async def test_size_limit_leaves_no_temp_file(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    with pytest.raises(PayloadTooLarge):
        await blobs.write_bytes(b"y" * 100, max_bytes=10)
    assert list((tmp_path / "images" / "tmp").iterdir()) == []


async def test_interrupted_upload_recovers_to_queued(store: Store, tmp_path: Path) -> None:
    repo = ImageRepository(store)
    rec = await repo.create(owner="p1", name="a")
    await repo.begin_upload(rec.id)
    with pytest.raises(Conflict):
        await repo.begin_upload(rec.id)
    (tmp_path / "images" / "tmp").mkdir(parents=True)
    (tmp_path / "images" / "tmp" / "partial.part").write_bytes(b"half")
    assert await repo.recover_interrupted_uploads(data_dir=tmp_path) == 1
    assert (await repo.require(rec.id)).status == "queued"
    assert list((tmp_path / "images" / "tmp").iterdir()) == []
