"""The image store's contracts: an image is ``active`` only with its data in place, a
blob goes when the last image using it goes, an upload moves ``queued`` → ``saving`` →
``active`` and nothing else, a crash mid-upload is undone at start, and a caller lists
exactly the images it may see."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from edgefed.core.errors import Conflict, Gone, NotFound
from edgefed.store.engine import Store
from edgefed.store.image import (
    BlobStore,
    ImageData,
    ImageMembers,
    ImageRepository,
    Images,
    NewImage,
    blob_path,
)

DATA = b"qcow2 or so" * 100


async def test_a_new_image_is_queued_with_unique_tags(store: Store) -> None:
    record = await Images(store).create(
        new=NewImage(owner="alpha", name="cirros", tags=("a", "b", "a"), properties={"k": 1})
    )
    assert record.status == "queued"
    assert record.tags == ("a", "b")
    assert record.properties == {"k": 1}
    assert record.size is None and record.blob_sha256 is None
    assert len(record.id) == 36

    updated = await Images(store).update(id=record.id, changes={"tags": ["x", "x", "y"]})
    assert updated is not None and updated.tags == ("x", "y")


async def test_an_image_id_is_taken_once(store: Store) -> None:
    images = Images(store)
    await images.create(new=NewImage(owner="alpha", id="11111111-1111-1111-1111-111111111111"))
    with pytest.raises(Conflict, match="Image with identifier 1111.* already exists!"):
        await images.create(new=NewImage(owner="beta", id="11111111-1111-1111-1111-111111111111"))


async def test_racing_creates_of_one_id_give_one_image_and_a_conflict(store: Store) -> None:
    image_id = "22222222-2222-2222-2222-222222222222"
    results = await asyncio.gather(
        *(Images(store).create(new=NewImage(owner=f"p{i}", id=image_id)) for i in range(4)),
        return_exceptions=True,
    )
    made = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(made) == 1
    assert all(isinstance(r, Conflict) for r in refused), refused
    assert len(refused) == 3


async def test_an_image_made_with_data_is_active_with_its_digests(
    store: Store, tmp_path: Path
) -> None:
    record = await ImageRepository(store).create(owner="alpha", data=DATA, data_dir=tmp_path)
    assert record.status == "active"
    assert record.size == len(DATA)
    assert record.checksum == hashlib.md5(DATA, usedforsecurity=False).hexdigest()
    assert record.os_hash_algo == "sha512"
    assert record.os_hash_value == hashlib.sha512(DATA).hexdigest()
    assert blob_path(tmp_path, record).read_bytes() == DATA


async def test_an_image_from_a_file_keeps_the_file_content(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "disk.raw"
    source.write_bytes(DATA * 3)
    record = await ImageRepository(store).create(
        owner="alpha", data_file=source, data_dir=tmp_path / "data"
    )
    assert blob_path(tmp_path / "data", record).read_bytes() == DATA * 3


async def test_data_without_a_data_dir_is_refused(store: Store, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="data_dir"):
        await ImageRepository(store).create(owner="alpha", data=b"x")
    pending = await BlobStore(tmp_path).write_bytes(b"x", max_bytes=10)
    with pytest.raises(ValueError, match="data_dir"):
        await Images(store).create(new=NewImage(owner="alpha"), blob=pending)
    assert await Images(store).list() == []


async def test_a_create_refused_as_a_duplicate_leaves_no_temp_file(
    store: Store, tmp_path: Path
) -> None:
    repo = ImageRepository(store)
    first = await repo.create(owner="alpha", data=b"one", data_dir=tmp_path)
    with pytest.raises(Conflict):
        await repo.create(owner="alpha", image_id=first.id, data=b"two", data_dir=tmp_path)
    blobs = BlobStore(tmp_path)
    assert list((blobs.root / "tmp").iterdir()) == []
    assert not blobs.path(hashlib.sha256(b"two").hexdigest()).exists()


async def test_an_image_without_data_has_no_blob_path(store: Store, tmp_path: Path) -> None:
    record = await ImageRepository(store).create(owner="alpha")
    with pytest.raises(NotFound, match=f"Image {record.id} has no data."):
        blob_path(tmp_path, record)


async def test_a_shared_blob_stays_until_its_last_image_goes(store: Store, tmp_path: Path) -> None:
    repo = ImageRepository(store)
    one = await repo.create(owner="alpha", data=DATA, data_dir=tmp_path)
    two = await repo.create(owner="beta", data=DATA, data_dir=tmp_path)
    assert one.blob_sha256 == two.blob_sha256
    path = blob_path(tmp_path, one)
    images = Images(store, data_dir=tmp_path)

    await repo.delete(one.id, data_dir=tmp_path)
    assert path.exists()
    assert await images.blob_in_use(path.name)

    await repo.delete(two.id, data_dir=tmp_path)
    assert not path.exists()
    assert not await images.blob_in_use(path.name)
    with pytest.raises(NotFound, match=f"No image found with ID {two.id}"):
        await repo.delete(two.id, data_dir=tmp_path)


async def test_a_delete_without_a_data_dir_keeps_the_blob(store: Store, tmp_path: Path) -> None:
    repo = ImageRepository(store)
    record = await repo.create(owner="alpha", data=DATA, data_dir=tmp_path)
    await repo.delete(record.id)
    assert blob_path(tmp_path, record).exists()
    assert await repo.get(record.id) is None


async def test_deleting_an_image_deletes_its_members(store: Store) -> None:
    repo = ImageRepository(store)
    record = await repo.create(owner="alpha")
    await repo.add_member(record.id, "beta")
    await repo.delete(record.id)
    again = await repo.create(owner="alpha", image_id=record.id)
    assert await repo.member(again.id, "beta") is None


async def test_a_member_is_added_once_per_image(store: Store) -> None:
    repo = ImageRepository(store)
    record = await repo.create(owner="alpha")
    member = await repo.add_member(record.id, "beta")
    assert (member.member_id, member.status) == ("beta", "pending")
    with pytest.raises(Conflict, match=f"Member beta already exists for image {record.id}."):
        await repo.add_member(record.id, "beta")
    other = await repo.create(owner="alpha")
    await repo.add_member(other.id, "beta")  # the same project on another image: fine
    assert [m.member_id for m in await ImageMembers(store, record.id).list()] == ["beta"]


async def test_require_and_update_name_a_missing_image(store: Store) -> None:
    repo = ImageRepository(store)
    with pytest.raises(NotFound, match="No image found with ID nope"):
        await repo.require("nope")
    with pytest.raises(NotFound, match="No image found with ID nope"):
        await repo.update("nope", name="x")
    record = await repo.create(owner="alpha", name="before")
    assert (await repo.update(record.id, name="after")).name == "after"
    assert (await repo.require(record.id)).name == "after"


# -- uploads ------------------------------------------------------------------------


async def test_an_upload_goes_queued_saving_active(store: Store, tmp_path: Path) -> None:
    repo = ImageRepository(store)
    record = await repo.create(owner="alpha")
    assert (await repo.begin_upload(record.id)).status == "saving"
    blobs = BlobStore(tmp_path)
    pending = await blobs.write_bytes(DATA, max_bytes=1 << 20)
    done = await repo.finish_upload(record.id, pending=pending, blobs=blobs)
    assert done.status == "active"
    assert done.size == len(DATA)
    assert blob_path(tmp_path, done).read_bytes() == DATA
    assert not pending.tmp_path.exists()


async def test_data_goes_only_to_a_queued_image(store: Store, tmp_path: Path) -> None:
    repo = ImageRepository(store)
    active = await repo.create(owner="alpha", data=b"x", data_dir=tmp_path)
    with pytest.raises(Conflict, match="is active: data can only be uploaded to a queued image"):
        await repo.begin_upload(active.id)
    queued = await repo.create(owner="alpha")
    await repo.begin_upload(queued.id)
    with pytest.raises(Conflict, match="is saving"):  # two uploads at once: one wins
        await repo.begin_upload(queued.id)
    with pytest.raises(NotFound):
        await repo.begin_upload("missing")


async def test_racing_uploads_let_exactly_one_begin(store: Store) -> None:
    repo = ImageRepository(store)
    record = await repo.create(owner="alpha")
    results = await asyncio.gather(
        *(repo.begin_upload(record.id) for _ in range(5)), return_exceptions=True
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert sum(isinstance(r, Conflict) for r in results) == 4


async def test_an_image_deleted_mid_upload_is_gone_and_its_data_dropped(
    store: Store, tmp_path: Path
) -> None:
    repo = ImageRepository(store)
    record = await repo.create(owner="alpha")
    await repo.begin_upload(record.id)
    blobs = BlobStore(tmp_path)
    pending = await blobs.write_bytes(DATA, max_bytes=1 << 20)
    await repo.delete(record.id)
    with pytest.raises(Gone, match="was deleted while its data was being uploaded"):
        await repo.finish_upload(record.id, pending=pending, blobs=blobs)
    assert not pending.tmp_path.exists()
    assert not blobs.path(pending.info.sha256).exists()


async def test_a_failed_upload_returns_the_image_to_queued(store: Store) -> None:
    repo = ImageRepository(store)
    data = ImageData(store)
    record = await repo.create(owner="alpha")
    await repo.begin_upload(record.id)
    await data.abort(record.id)
    assert (await repo.require(record.id)).status == "queued"
    await data.abort("gone-already")  # an image deleted meanwhile: nothing to do
    assert (await repo.begin_upload(record.id)).status == "saving"  # and it can retry


async def test_abort_leaves_an_active_image_alone(store: Store, tmp_path: Path) -> None:
    repo = ImageRepository(store)
    record = await repo.create(owner="alpha", data=b"x", data_dir=tmp_path)
    await ImageData(store).abort(record.id)
    assert (await repo.require(record.id)).status == "active"


async def test_a_staged_image_is_activated_once_its_data_is_in(
    store: Store, tmp_path: Path
) -> None:
    repo = ImageRepository(store)
    data = ImageData(store)
    record = await repo.create(owner="alpha")
    with pytest.raises(Conflict, match="needs to be staged before 'glance-direct'"):
        await data.activate_staged(record.id)
    await repo.begin_upload(record.id, status="uploading")
    with pytest.raises(Conflict, match="needs to be staged"):  # uploading, no data yet
        await data.activate_staged(record.id)
    blobs = BlobStore(tmp_path)
    pending = await blobs.write_bytes(DATA, max_bytes=1 << 20)
    staged = await repo.finish_upload(
        record.id, pending=pending, blobs=blobs, final_status="uploading"
    )
    assert staged.status == "uploading" and staged.blob_sha256 is not None
    assert (await data.activate_staged(record.id)).status == "active"
    with pytest.raises(Conflict):  # once
        await data.activate_staged(record.id)


async def test_recovery_requeues_cut_uploads_and_clears_temp_files(
    store: Store, tmp_path: Path
) -> None:
    repo = ImageRepository(store)
    saving = await repo.create(owner="alpha")
    await repo.begin_upload(saving.id)
    staging = await repo.create(owner="alpha")
    await repo.begin_upload(staging.id, status="uploading")
    staged = await repo.create(owner="alpha")
    await repo.begin_upload(staged.id, status="uploading")
    blobs = BlobStore(tmp_path)
    await repo.finish_upload(
        staged.id,
        pending=await blobs.write_bytes(b"in", max_bytes=10),
        blobs=blobs,
        final_status="uploading",
    )
    active = await repo.create(owner="alpha", data=b"x", data_dir=tmp_path)
    cut = await blobs.write_bytes(b"half", max_bytes=10)  # a temp file a crash left

    assert await repo.recover_interrupted_uploads(data_dir=tmp_path) == 2
    statuses = {r.id: r.status for r in await Images(store).list()}
    assert statuses == {
        saving.id: "queued",
        staging.id: "queued",
        staged.id: "uploading",  # its data is in: a later import activates it
        active.id: "active",
    }
    assert not cut.tmp_path.exists()


# -- who sees what ------------------------------------------------------------------


async def visible_ids(store: Store, project: str | None, *, admin: bool = False) -> set[str]:
    found, _ = await Images(store).list_visible(project_id=project, all_projects=admin)
    return {r.id for r in found}


async def test_a_project_lists_its_own_public_community_and_shared_images(store: Store) -> None:
    repo = ImageRepository(store)
    own = await repo.create(owner="alpha", visibility="private")
    public = await repo.create(owner="beta", visibility="public")
    community = await repo.create(owner="beta", visibility="community")
    private = await repo.create(owner="beta", visibility="private")
    shared = await repo.create(owner="beta", visibility="shared")
    not_shared = await repo.create(owner="beta", visibility="shared")
    await repo.add_member(shared.id, "alpha")

    assert await visible_ids(store, "alpha") == {own.id, public.id, community.id, shared.id}
    _, statuses = await Images(store).list_visible(project_id="alpha", all_projects=False)
    assert statuses == {shared.id: "pending"}
    assert await visible_ids(store, None) == {public.id, community.id}
    everything = {own.id, public.id, community.id, private.id, shared.id, not_shared.id}
    assert await visible_ids(store, "alpha", admin=True) == everything
    _, admin_statuses = await Images(store).list_visible(project_id="alpha", all_projects=True)
    assert admin_statuses == {}


async def test_the_visible_list_is_in_creation_order_and_follows_writes(store: Store) -> None:
    repo = ImageRepository(store)
    made = [await repo.create(owner="alpha", name=f"i{i}") for i in range(3)]
    found, _ = await Images(store).list_visible(project_id="alpha", all_projects=False)
    assert [r.id for r in found] == [r.id for r in made]
    await repo.update(made[0].id, name="renamed")
    await repo.delete(made[1].id)
    found, _ = await Images(store).list_visible(project_id="alpha", all_projects=False)
    assert [(r.id, r.name) for r in found] == [(made[0].id, "renamed"), (made[2].id, "i2")]


async def test_images_survive_reopening_the_store(store_url: str, tmp_path: Path) -> None:
    first = await Store.open(store_url)
    try:
        made = await ImageRepository(first).create(
            owner="alpha", name="kept", data=DATA, data_dir=tmp_path, properties={"os": "x"}
        )
    finally:
        await first.close()
    second = await Store.open(store_url)
    try:
        found = await ImageRepository(second).require(made.id)
    finally:
        await second.close()
    assert found == made
    assert blob_path(tmp_path, found).read_bytes() == DATA
