"""The hidden image Paris makes of a cold move's disk has Glance's digests of the disk
sent (``checksum`` md5, ``os_hash_value`` sha512, and the blob's sha256): taken as its
chunks came, the disk not read again at the commit nor copied into the image store
(renamed into it); after Paris lost them (a restart mid-transfer) read from the file.
Sites in this process on the fake driver."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
from relocation_support import (
    DISK,
    NOVA,
    C,
    ChunkCounter,
    active_server,
    moved,
    relocate,
    status_is,
)

from edgefed.services.compute import relocation_in
from edgefed.services.compute.relocation_out import Relocator
from edgefed.store.blobs import BlobInfo, BlobStore
from edgefed.store.compute import Relocations
from edgefed.store.image import ImageRepository, blob_path
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import admin, ctx_of, fleet

KERNEL = os.urandom(3 << 20)


class Reads:
    """How often the image store read a file for its digests, or copied one."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.digested: list[Path] = []
        self.copied: list[Path] = []
        digest_file, write_file = BlobStore.digest_file, BlobStore.write_file

        async def digest(blobs: BlobStore, source: Path) -> BlobInfo:
            self.digested.append(source)
            return await digest_file(blobs, source)

        async def write(blobs: BlobStore, source: Path, **kw: Any) -> Any:
            self.copied.append(source)
            return await write_file(blobs, source, **kw)

        monkeypatch.setattr(BlobStore, "digest_file", digest)
        monkeypatch.setattr(BlobStore, "write_file", write)


async def moved_image(berlin: InProcessSite, paris: InProcessSite, server_id: str) -> Any:
    """Relocate ``server_id`` to Paris; its image there once the move is done."""
    h = {**admin(berlin), **NOVA}
    r = await relocate(berlin, h, server_id)
    assert r.status_code == 202, r.text
    await moved(berlin, h, server_id)
    at_paris = {**admin(paris), **NOVA}
    await status_is(paris, at_paris, server_id, "ACTIVE")
    shown = (await paris.client.get(f"{C}/servers/{server_id}", headers=at_paris)).json()
    image = await ImageRepository(ctx_of(paris).store).get(shown["server"]["image"]["id"])
    assert image is not None and image.os_hidden
    return image


def has_the_disk_s_digests(paris: InProcessSite, image: Any) -> None:
    assert image.size == len(DISK)
    assert image.checksum == hashlib.md5(DISK, usedforsecurity=False).hexdigest()
    assert image.os_hash_algo == "sha512"
    assert image.os_hash_value == hashlib.sha512(DISK).hexdigest()
    assert image.blob_sha256 == hashlib.sha256(DISK).hexdigest()
    assert blob_path(paris.settings.data_dir, image).read_bytes() == DISK
    assert not list((paris.settings.data_dir / "relocations").glob("*"))
    relocation = image.properties["edge_relocation"]
    assert not [key for key in relocation_in._running if key[0] == relocation]  # nothing kept


async def test_a_cold_move_s_image_has_the_digests_taken_as_its_chunks_came(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        server_id = await active_server(berlin, {**admin(berlin), **NOVA})
        reads = Reads(monkeypatch)

        image = await moved_image(berlin, paris, server_id)
        has_the_disk_s_digests(paris, image)
        assert reads.digested == [] and reads.copied == []  # neither read again nor copied


async def test_the_disk_s_digests_end_where_its_parts_begin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel-boot guest: its kernel goes after the disk in the file (the disk ends
    inside the third chunk); the image's digests are the disk's alone."""
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        images = ImageRepository(ctx_of(berlin).store)
        data_dir = berlin.settings.data_dir
        kernel = await images.create(
            owner=None, name="tiny-kernel", disk_format="aki", container_format="aki",
            visibility="public", data=KERNEL, data_dir=data_dir,
        )  # fmt: skip
        disk = await images.create(
            owner=None, name="tiny", disk_format="raw", container_format="bare",
            visibility="public", data=DISK, data_dir=data_dir,
            properties={"kernel_id": kernel.id, "os_command_line": "console=ttyS0"},
        )  # fmt: skip
        h = {**admin(berlin), **NOVA}
        body = {"server": {"name": "shop", "imageRef": disk.id, "flavorRef": "1",
                           "networks": "none"}}  # fmt: skip
        r = await berlin.client.post(f"{C}/servers", json=body, headers=h)
        assert r.status_code == 202, r.text
        server_id = str(r.json()["server"]["id"])
        await status_is(berlin, h, server_id, "ACTIVE")
        reads = Reads(monkeypatch)

        image = await moved_image(berlin, paris, server_id)
        [record] = await Relocations(ctx_of(berlin).store).list(direction="out")
        assert record.disk_size == len(DISK) + len(KERNEL)
        has_the_disk_s_digests(paris, image)
        assert reads.digested == []
        # The kernel's image, made of its part (a file of its own): copied, as before.
        made = await ImageRepository(ctx_of(paris).store).get(image.properties["kernel_id"])
        assert (
            made is not None
            and made.checksum == hashlib.md5(KERNEL, usedforsecurity=False).hexdigest()
        )


async def test_after_paris_lost_them_the_digests_are_read_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = ChunkCounter()
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True, transport=transport) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        server_id = await active_server(berlin, {**admin(berlin), **NOVA})
        relocator = ctx_of(berlin).slots.require(Relocator)
        others = set(relocation_in._running)  # other tests' moves, cut before their end
        restarted: list[list[tuple[str, str]]] = []

        async def paris_restarts(seconds: float) -> None:
            # The link is down after the first chunk; meanwhile Paris restarts: what it
            # kept in memory of the transfer is gone, its file and journal are not.
            kept = [key for key in relocation_in._running if key not in others]
            restarted.append(kept)
            for key in kept:
                del relocation_in._running[key]
            transport.cut_after = None
            transport.cut.clear()
            await asyncio.sleep(min(seconds, 0.05))  # the others' turn (Paris's build)

        relocator.sleep = paris_restarts
        transport.cut_after = 1
        reads = Reads(monkeypatch)

        image = await moved_image(berlin, paris, server_id)
        # It had the first chunk's digests.
        assert restarted and restarted[0] == [(image.properties["edge_relocation"], "receiving")]
        assert transport.chunks == 3  # resumed, nothing sent twice
        has_the_disk_s_digests(paris, image)
        # Read once, for the image (the file's sha256 once more, as before, when it was
        # whole: relocation_in.file_digest).
        assert [p.name for p in reads.digested] == [f"{image.properties['edge_relocation']}.in"]
        assert reads.copied == []
