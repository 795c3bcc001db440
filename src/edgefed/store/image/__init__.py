"""Images: their metadata (``Images``, ``ImageMembers``, ``ImageData`` for uploads) and
their data (``edgefed.store.blobs``).

Other services (compute snapshots and boots, the sync engine) cannot import the image
service; they use ``ImageRepository``: the calls they make, over the same pieces.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from edgefed.core.errors import NotFound
from edgefed.store.blobs import CHUNK_SIZE, BlobInfo, BlobStore, PendingBlob
from edgefed.store.engine import Store
from edgefed.store.image.data import ImageData
from edgefed.store.image.images import HASH_ALGO, Images
from edgefed.store.image.members import ImageMembers
from edgefed.store.image.tables import (
    ImageRecord,
    MemberRecord,
    NewImage,
    NewMember,
    image_members,
    images,
)

__all__ = [
    "CHUNK_SIZE",
    "HASH_ALGO",
    "BlobInfo",
    "BlobStore",
    "ImageData",
    "ImageMembers",
    "ImageRecord",
    "ImageRepository",
    "Images",
    "MemberRecord",
    "NewImage",
    "NewMember",
    "PendingBlob",
    "blob_path",
    "image_members",
    "images",
]


def blob_path(data_dir: Path, record: ImageRecord) -> Path:
    """Where the data of ``record`` lives; NotFound if the image has no data."""
    if record.blob_sha256 is None:
        raise NotFound(f"Image {record.id} has no data.")
    return BlobStore(data_dir).path(record.blob_sha256)


class ImageRepository:
    """What other rooms do with images: read one, make one (a snapshot, a test's), write
    its data, see who it is shared with."""

    def __init__(self, store: Store):
        self.store = store
        self.data = ImageData(store)

    async def get(self, image_id: str) -> ImageRecord | None:
        return await self.data.images.get(id=image_id)

    async def require(self, image_id: str) -> ImageRecord:
        record = await self.get(image_id)
        if record is None:
            raise NotFound(f"No image found with ID {image_id}")
        return record

    async def create(
        self,
        *,
        owner: str | None,
        image_id: str | None = None,
        tags: Iterable[str] = (),
        properties: Mapping[str, Any] | None = None,
        data: bytes | None = None,
        data_file: Path | None = None,
        data_blob: PendingBlob | None = None,
        data_dir: Path | None = None,
        max_bytes: int = 1 << 40,
        **values: Any,
    ) -> ImageRecord:
        """A new image, ``queued``; or ``active`` when ``data``/``data_file`` is given
        (copied into the blob store), or ``data_blob``, written or adopted already
        (``BlobStore.adopt_file``: renamed into place); then ``data_dir``, the site's
        data directory, is needed."""
        new = NewImage(
            owner=owner, id=image_id, tags=tuple(tags), properties=properties or {}, **values
        )
        if data is None and data_file is None and data_blob is None:
            return await self.data.images.create(new=new)
        if data_dir is None:
            raise ValueError("data_dir is needed to store image data")
        blobs = BlobStore(data_dir)
        if data_blob is not None:
            pending = data_blob
        elif data_file is not None:
            pending = await blobs.write_file(data_file, max_bytes=max_bytes)
        else:
            assert data is not None
            pending = await blobs.write_bytes(data, max_bytes=max_bytes)
        return await Images(self.store, data_dir=data_dir).create(new=new, blob=pending)

    async def update(self, image_id: str, **changes: Any) -> ImageRecord:
        found = await self.data.images.update(id=image_id, changes=changes)
        if found is None:
            raise NotFound(f"No image found with ID {image_id}")
        return found

    async def delete(self, image_id: str, *, data_dir: Path | None = None) -> None:
        if not await Images(self.store, data_dir=data_dir).delete(id=image_id):
            raise NotFound(f"No image found with ID {image_id}")

    async def begin_upload(self, image_id: str, *, status: str = "saving") -> ImageRecord:
        return await self.data.begin(image_id, status=status)

    async def finish_upload(
        self, image_id: str, *, pending: PendingBlob, blobs: BlobStore, final_status: str = "active"
    ) -> ImageRecord:
        return await self.data.finish(
            image_id, pending=pending, blobs=blobs, final_status=final_status
        )

    async def recover_interrupted_uploads(self, *, data_dir: Path) -> int:
        return await self.data.recover(data_dir=data_dir)

    async def member(self, image_id: str, member_id: str) -> MemberRecord | None:
        return await ImageMembers(self.store, image_id).get(id=member_id)

    async def add_member(self, image_id: str, member_id: str) -> MemberRecord:
        return await ImageMembers(self.store, image_id).create(new=NewMember(member_id))
