"""The image repository and blob store, as other services use them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from edgefed.core.errors import Conflict, Gone, PayloadTooLarge
from edgefed.store.engine import Store
from edgefed.store.image import (
    BlobStore,
    ImageData,
    ImageMembers,
    ImageRepository,
    Images,
    blob_path,
)


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


async def test_members_belong_to_one_image_and_page_in_order(store: Store) -> None:
    repo = ImageRepository(store)
    a, b = await repo.create(owner="p1", name="a"), await repo.create(owner="p1", name="b")
    for project in ("m1", "m2", "m3"):
        await repo.add_member(a.id, project)
    await repo.add_member(b.id, "m1")
    with pytest.raises(Conflict, match=f"Member m2 already exists for image {a.id}."):
        await repo.add_member(a.id, "m2")
    of_a = ImageMembers(store, a.id)
    assert [m.member_id for m in await of_a.list()] == ["m1", "m2", "m3"]
    assert [m.member_id for m in await of_a.list(limit=1, after="m1")] == ["m2"]
    with pytest.raises(LookupError):
        await of_a.list(after="m9")
    accepted = await of_a.update(id="m1", changes={"status": "accepted"})
    assert accepted is not None and accepted.status == "accepted"
    assert (await ImageMembers(store, b.id).get(id="m1")).status == "pending"  # type: ignore[union-attr]
    assert await ImageMembers(store, b.id).get(id="m2") is None
    assert await of_a.update(id="m9", changes={"status": "accepted"}) is None
    assert await of_a.delete(id="m2") and not await of_a.delete(id="m2")
    # Deleting the image takes its members with it, not another image's.
    assert await Images(store).delete(id=a.id)
    assert await of_a.list() == [] and len(await ImageMembers(store, b.id).list()) == 1


async def test_data_goes_queued_saving_active_or_back_to_queued(
    store: Store, tmp_path: Path
) -> None:
    repo, data = ImageRepository(store), ImageData(store)
    rec = await repo.create(owner="p1", name="a")
    blobs = BlobStore(tmp_path)
    assert (await data.begin(rec.id)).status == "saving"
    pending = await blobs.write_bytes(b"abc", max_bytes=10)
    done = await data.finish(rec.id, pending=pending, blobs=blobs)
    assert (done.status, done.size, done.checksum) == ("active", 3, hashlib.md5(b"abc").hexdigest())
    with pytest.raises(Conflict):
        await data.begin(rec.id)
    # Staged: uploading with data, then imported.
    staged = await repo.create(owner="p1", name="s")
    with pytest.raises(Conflict, match="needs to be staged"):
        await data.activate_staged(staged.id)
    await data.begin(staged.id, status="uploading")
    pending = await blobs.write_bytes(b"xyz", max_bytes=10)
    await data.finish(staged.id, pending=pending, blobs=blobs, final_status="uploading")
    assert (await data.activate_staged(staged.id)).status == "active"
    # An upload that fails goes back to queued; an image deleted meanwhile is Gone.
    cut = await repo.create(owner="p1", name="c")
    await data.begin(cut.id)
    await data.abort(cut.id)
    assert (await repo.require(cut.id)).status == "queued"
    await data.begin(cut.id)
    await Images(store).delete(id=cut.id)
    pending = await blobs.write_bytes(b"late", max_bytes=10)
    with pytest.raises(Gone):
        await data.finish(cut.id, pending=pending, blobs=blobs)
    assert not pending.tmp_path.exists()
