"""Images as records: create (with data already written, or queued), update, delete (and
the blob no other image uses), and the list a caller may see, kept until the next write."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from edgefed.core.errors import Conflict
from edgefed.store.blobs import BlobInfo, BlobStore, PendingBlob
from edgefed.store.engine import AsyncConnection, Store
from edgefed.store.image.tables import ImageRecord, NewImage, image_members, images
from edgefed.store.records import Clock, RecordMapper, RecordRepository, column_values
from edgefed.store.schema import utcnow

HASH_ALGO = "sha512"

# The list's statements, built once: SQLAlchemy caches their compiled form by a key it
# derives from the statement object, which is memoised on a statement built once.
_ALL_IMAGES = select(images).order_by(images.c.created_at, images.c.id)
_MEMBER_STATUSES = select(image_members.c.image_id, image_members.c.status).where(
    image_members.c.member_id == bindparam("member_id")
)


def data_columns(info: BlobInfo) -> dict[str, Any]:
    """An image's columns once its data is in place."""
    return {
        "status": "active",
        "size": info.size,
        "checksum": info.md5,
        "os_hash_algo": HASH_ALGO,
        "os_hash_value": info.sha512,
        "blob_sha256": info.sha256,
    }


def unique(tags: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(tags))


async def blob_refs(conn: AsyncConnection, sha256: str) -> int:
    count = await conn.execute(
        select(func.count()).select_from(images).where(images.c.blob_sha256 == sha256)
    )
    return int(count.scalar_one())


def _exists(exc: IntegrityError | None, values: Mapping[str, Any]) -> Exception:
    return Conflict(f"Image with identifier {values['id']} already exists!")


class Images(RecordRepository[ImageRecord, NewImage]):
    """All SQL about images' metadata. Policy is the caller's business.

    With ``data_dir`` (the site's data directory), a delete also removes the image's
    blob when no other image uses it, and a create may place a blob written beforehand.
    """

    table = images
    mapper = RecordMapper(ImageRecord)

    def __init__(self, store: Store, *, data_dir: Path | None = None, now: Clock = utcnow):
        super().__init__(store, now=now, conflict=_exists)
        self.data_dir = data_dir

    async def create(self, *, new: NewImage, blob: PendingBlob | None = None) -> ImageRecord:
        """A new image, ``queued``; ``active`` with ``blob`` (written, not yet in place:
        it is placed before the row is committed)."""
        values = self.stamped(column_values(new))
        values.update(status="queued", tags=unique(new.tags))
        if blob is not None:
            values.update(data_columns(blob.info))
        blobs = BlobStore(self.data_dir) if blob is not None and self.data_dir else None
        if blob is not None and blobs is None:
            raise ValueError("Images(data_dir=…) is needed to place image data")
        try:
            async with self.store.write() as conn:
                exists = await conn.execute(select(images.c.id).where(images.c.id == values["id"]))
                if exists.first() is not None:
                    raise _exists(None, values)
                if blob is not None and blobs is not None:
                    blobs.place(blob)
                    blob = None
                await conn.execute(insert(images).values(**values))
        except IntegrityError as exc:  # a racing create of the same id (PostgreSQL)
            raise _exists(exc, values) from exc
        finally:
            if blob is not None and blobs is not None:
                blobs.discard(blob)
        found = await self.get(id=str(values["id"]))
        assert found is not None
        return found

    async def update(self, *, id: str, changes: Mapping[str, Any]) -> ImageRecord | None:
        """Set columns (name, visibility, min_ram, properties, tags, status…)."""
        if "tags" in changes:
            changes = {**changes, "tags": unique(changes["tags"])}
        return await super().update(id=id, changes=changes)

    async def delete(self, *, id: str) -> bool:
        """Delete the image and its members; its blob too if no other image uses it."""
        async with self.store.write() as conn:
            row = (
                await conn.execute(select(images.c.blob_sha256).where(images.c.id == id))
            ).first()
            if row is None:
                return False
            await conn.execute(delete(image_members).where(image_members.c.image_id == id))
            await conn.execute(delete(images).where(images.c.id == id))
            sha = row.blob_sha256
            if sha is not None and self.data_dir is not None and await blob_refs(conn, sha) == 0:
                BlobStore(self.data_dir).remove(sha)
        return True

    async def blob_in_use(self, sha256: str) -> bool:
        async with self.store.read() as conn:
            return await blob_refs(conn, sha256) > 0

    async def list_visible(
        self, *, project_id: str | None, all_projects: bool
    ) -> tuple[Sequence[ImageRecord], Mapping[str, str]]:
        """Images a caller may see, and the caller's member status for shared ones.

        ``all_projects`` (admin): every image, and no statuses. Otherwise the project's
        own images, public and community images, and images shared with the project.
        Read again only after a write (``Store.memo``): clients list images over and
        over (every ``--image NAME`` is a list). The answer is shared: do not change it.
        """
        return await self.store.memo(
            ("image.list_visible", project_id, all_projects),
            lambda: self._read_visible(project_id, all_projects),
        )

    async def _read_visible(
        self, project_id: str | None, all_projects: bool
    ) -> tuple[tuple[ImageRecord, ...], dict[str, str]]:
        async with self.store.read() as conn:
            statuses: dict[str, str] = {}
            query = _ALL_IMAGES
            # An administrator sees every image whatever its members said: no statuses.
            if project_id is not None and not all_projects:
                member_rows = await conn.execute(_MEMBER_STATUSES, {"member_id": project_id})
                statuses = {r.image_id: r.status for r in member_rows}
            if not all_projects:
                conditions: list[ColumnElement[bool]] = [
                    images.c.visibility.in_(("public", "community"))
                ]
                if project_id is not None:
                    conditions.append(images.c.owner == project_id)
                if statuses:
                    conditions.append(images.c.id.in_(list(statuses)))
                query = query.where(or_(*conditions))
            return tuple(self.mapper.all(await conn.execute(query))), statuses


def receiving_data() -> ColumnElement[bool]:
    """Rows whose data is on its way in (an upload, or a stage not yet complete)."""
    return or_(
        images.c.status == "saving",
        (images.c.status == "uploading") & images.c.blob_sha256.is_(None),
    )


async def set_status(conn: AsyncConnection, where: ColumnElement[bool], status: str) -> int:
    result = await conn.execute(
        update(images).where(where).values(status=status, updated_at=utcnow())
    )
    return int(result.rowcount or 0)
