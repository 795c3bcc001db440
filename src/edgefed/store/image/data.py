"""An image's data on its way in: ``queued`` → ``saving`` (or ``uploading`` when staged)
→ ``active``; back to ``queued`` when an upload fails or a crash cut it.

The blob is placed (``BlobStore.place``: renamed and its directory fsync'd) inside the
write transaction that records it, before the commit: an image an answer called
``active`` has its data on disk. ``recover`` runs at start: rows left ``saving`` go
back to ``queued`` and the temp files of cut uploads are removed.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, update

from edgefed.core.errors import Conflict, Gone, NotFound
from edgefed.store.blobs import BlobStore, PendingBlob
from edgefed.store.engine import Store
from edgefed.store.image.images import Images, data_columns, receiving_data, set_status
from edgefed.store.image.tables import ImageRecord, images
from edgefed.store.schema import utcnow


class ImageData:
    def __init__(self, store: Store):
        self.store = store
        self.images = Images(store)

    async def _reread(self, image_id: str) -> ImageRecord:
        record = await self.images.get(id=image_id)
        if record is None:
            raise NotFound(f"No image found with ID {image_id}")
        return record

    async def begin(self, image_id: str, *, status: str = "saving") -> ImageRecord:
        """``queued`` → ``saving`` (or ``uploading`` when staging); Conflict otherwise."""
        async with self.store.write() as conn:
            # Compare and set: on PostgreSQL a racing upload may have read ``queued`` too.
            queued = (images.c.id == image_id) & (images.c.status == "queued")
            if not await set_status(conn, queued, status):
                row = (
                    await conn.execute(select(images.c.status).where(images.c.id == image_id))
                ).first()
                if row is None:
                    raise NotFound(f"No image found with ID {image_id}")
                raise Conflict(
                    f"Image {image_id} is {row.status}: data can only be uploaded to a queued "
                    "image."
                )
        return await self._reread(image_id)

    async def abort(self, image_id: str) -> None:
        """Back to ``queued`` after a failed upload or stage (the image may be gone: fine)."""
        async with self.store.write() as conn:
            await set_status(conn, (images.c.id == image_id) & receiving_data(), "queued")

    async def finish(
        self,
        image_id: str,
        *,
        pending: PendingBlob,
        blobs: BlobStore,
        final_status: str = "active",
    ) -> ImageRecord:
        """Place the blob, then record size and digests with ``final_status``, durably.

        ``final_status`` is ``active`` for an upload, ``uploading`` for a staged import
        (``activate_staged`` finishes it).
        """
        try:
            async with self.store.write() as conn:
                row = (
                    await conn.execute(select(images.c.status).where(images.c.id == image_id))
                ).first()
                if row is None or row.status not in ("saving", "uploading"):
                    raise Gone(f"Image {image_id} was deleted while its data was being uploaded.")
                blobs.place(pending)
                columns = {**data_columns(pending.info), "status": final_status}
                await conn.execute(
                    update(images)
                    .where(images.c.id == image_id)
                    .values(updated_at=utcnow(), **columns)
                )
        finally:
            blobs.discard(pending)
        return await self._reread(image_id)

    async def activate_staged(self, image_id: str) -> ImageRecord:
        """A staged image (``uploading`` with its data in place) becomes ``active``."""
        staged = (
            (images.c.id == image_id)
            & (images.c.status == "uploading")
            & images.c.blob_sha256.is_not(None)
        )
        async with self.store.write() as conn:
            if not await set_status(conn, staged, "active"):
                raise Conflict(
                    f"Image {image_id} needs to be staged before 'glance-direct' can import it."
                )
        return await self._reread(image_id)

    async def recover(self, *, data_dir: Path) -> int:
        """At start: uploads cut by a crash go back to ``queued``; temp files are removed."""
        BlobStore(data_dir).clear_temp_files()
        async with self.store.write() as conn:
            return await set_status(conn, receiving_data(), "queued")
