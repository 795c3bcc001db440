"""The image service's side of the ``ImageCatalog`` port, as the volume service uses
it: ``find`` answers with Glance's visibility (no image and an image the caller may
not see look the same), ``data_file`` gives the bytes only where this site holds
them, and ``create_from_file`` makes the caller's image, public only for an admin."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from edgefed.api.auth import Principal
from edgefed.api.images import ImageCatalog
from edgefed.core.errors import Forbidden
from edgefed.store.image import ImageRecord, ImageRepository
from edgefed.testkit.inprocess import InProcessSite

OWNER, OTHER = "p-owner", "p-other"


def caller(project: str | None, *roles: str) -> Principal:
    claims: dict[str, Any] = {"user": {"id": "u1", "name": "u1", "domain": {"id": "default"}}}
    if project is not None:
        claims["project"] = {"id": project, "domain": {"id": "default"}}
    return Principal(token="t", claims=claims, roles=frozenset(roles), user_id="u1")


def catalog(site: InProcessSite) -> ImageCatalog:
    images = site.app.state.ctx.images
    assert images is not None
    return images  # type: ignore[no-any-return]


async def image(site: InProcessSite, visibility: str, **values: Any) -> ImageRecord:
    repo = ImageRepository(site.app.state.ctx.store)
    return await repo.create(owner=OWNER, name=f"{visibility}-image", visibility=visibility,
                             disk_format="raw", container_format="bare", **values)  # fmt: skip


async def seen_by(site: InProcessSite, record: ImageRecord, principal: Principal) -> bool:
    return await catalog(site).find(image_id=record.id, principal=principal) is not None


async def test_a_private_image_is_seen_by_its_project_and_admins_only(site: InProcessSite) -> None:
    private = await image(site, "private")
    assert await seen_by(site, private, caller(OWNER, "reader"))
    assert await seen_by(site, private, caller(OWNER, "member"))
    assert await seen_by(site, private, caller(OTHER, "admin"))
    assert not await seen_by(site, private, caller(OTHER, "member"))
    assert not await seen_by(site, private, caller(OWNER))  # a project token without a role
    assert not await seen_by(site, private, caller(None, "member"))


async def test_public_and_community_images_are_seen_by_everyone(site: InProcessSite) -> None:
    for visibility in ("public", "community"):
        record = await image(site, visibility)
        assert await seen_by(site, record, caller(OTHER, "reader")), visibility
        assert await seen_by(site, record, caller(None)), visibility


async def test_a_shared_image_is_seen_by_its_members(site: InProcessSite) -> None:
    shared = await image(site, "shared")
    assert not await seen_by(site, shared, caller(OTHER, "member"))
    await ImageRepository(site.app.state.ctx.store).add_member(shared.id, OTHER)
    assert await seen_by(site, shared, caller(OTHER, "member"))
    assert not await seen_by(site, shared, caller("p-third", "member"))
    assert not await seen_by(site, shared, caller(None, "member"))


async def test_find_gives_what_a_volume_is_made_from(site: InProcessSite) -> None:
    data = b"\x01" * 4096
    record = await image(site, "public", data=data, data_dir=site.settings.data_dir, min_disk=2)
    found = await catalog(site).find(image_id=record.id, principal=caller(OTHER, "member"))
    assert found is not None
    assert (found.id, found.status, found.size, found.min_disk) == (record.id, "active", 4096, 2)
    assert (found.disk_format, found.container_format) == ("raw", "bare")
    assert found.checksum == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert (
        await catalog(site).find(image_id="no-such-image", principal=caller(OWNER, "admin")) is None
    )


async def test_the_data_file_is_given_only_where_the_bytes_are(site: InProcessSite) -> None:
    queued = await image(site, "public")
    assert await catalog(site).data_file(image_id=queued.id) is None
    assert await catalog(site).data_file(image_id="no-such-image") is None

    active = await image(site, "public", data=b"disk bytes", data_dir=site.settings.data_dir)
    path = await catalog(site).data_file(image_id=active.id)
    assert path is not None and path.read_bytes() == b"disk bytes"
    path.unlink()  # the blob went away (a cache cleared, a disk replaced)
    assert await catalog(site).data_file(image_id=active.id) is None


async def test_an_image_made_of_a_file_is_the_callers_and_active(
    site: InProcessSite, tmp_path: Path
) -> None:
    data_file = tmp_path / "volume.raw"
    data_file.write_bytes(b"\x00" * 8192)
    made = await catalog(site).create_from_file(
        principal=caller(OWNER, "member"), name="from-volume", disk_format="raw",
        container_format="bare", visibility="private", protected=True, data_file=data_file,
    )  # fmt: skip
    assert (made.name, made.status, made.size) == ("from-volume", "active", 8192)
    record = await ImageRepository(site.app.state.ctx.store).get(made.id)
    assert record is not None and (record.owner, record.protected) == (OWNER, True)
    assert not await seen_by(site, record, caller(OTHER, "member"))
    path = await catalog(site).data_file(image_id=made.id)
    assert path is not None and path.read_bytes() == data_file.read_bytes()


async def test_an_image_without_a_file_waits_for_its_data(site: InProcessSite) -> None:
    made = await catalog(site).create_from_file(
        principal=caller(OWNER, "member"), name="later", disk_format="qcow2",
        container_format="bare", visibility="shared", protected=False, data_file=None,
    )  # fmt: skip
    assert (made.status, made.size) == ("queued", None)


@pytest.mark.parametrize(("roles", "allowed"), [(("member",), False), (("admin",), True)])
async def test_only_an_admin_makes_a_public_image(
    site: InProcessSite, tmp_path: Path, roles: tuple[str, ...], allowed: bool
) -> None:
    async def make() -> Any:
        return await catalog(site).create_from_file(
            principal=caller(OWNER, *roles), name="public", disk_format="raw",
            container_format="bare", visibility="public", protected=False, data_file=None,
        )  # fmt: skip

    if allowed:
        assert (await make()).status == "queued"
        return
    with pytest.raises(Forbidden, match="Only an administrator may make an image public"):
        await make()
    listed = await site.client.get("/image/v2/images", headers={"X-Auth-Token": await site.token()})
    assert listed.json()["images"] == []  # refused before anything was stored
