"""Images: their metadata (tables, ``ImageRepository``) and their data (``BlobStore``).

Other services (compute snapshots, the sync engine) cannot import the image service;
they use this module. Metadata lives in the site database; data lives in the site's
data directory under ``images/<sha256 hex>``, content-addressed so that identical data
is stored once and a blob can be verified by its name.

Durability: a blob is written to ``images/tmp/``, fsync'd, renamed into place and the
directory fsync'd *before* the row that points to it is committed, so an image that
an API answer called ``active`` survives ``kill -9``. An upload interrupted by a crash
leaves the row in ``saving`` and a temp file: ``recover_interrupted_uploads`` puts the
row back to ``queued`` and removes the temp files at start.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import uuid
from collections.abc import AsyncIterable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    ForeignKey,
    Integer,
    String,
    Table,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Row

from edgefed.core.errors import Conflict, Gone, NotFound, PayloadTooLarge, ValidationFailed
from edgefed.core.files import fsync_dir
from edgefed.store.engine import AsyncConnection, Store
from edgefed.store.schema import JsonDoc, UtcDateTime, metadata, utcnow

images = Table(
    "images",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(255), nullable=True),
    Column("status", String(30), nullable=False),
    Column("size", BigInteger, nullable=True),
    Column("virtual_size", BigInteger, nullable=True),
    Column("disk_format", String(20), nullable=True),
    Column("container_format", String(20), nullable=True),
    Column("owner", String(64), nullable=True, index=True),
    Column("visibility", String(20), nullable=False),
    Column("protected", Boolean, nullable=False, default=False),
    Column("os_hidden", Boolean, nullable=False, default=False),
    Column("min_disk", Integer, nullable=False, default=0),
    Column("min_ram", Integer, nullable=False, default=0),
    Column("checksum", String(32), nullable=True),
    Column("os_hash_algo", String(64), nullable=True),
    Column("os_hash_value", String(128), nullable=True),
    Column("blob_sha256", String(64), nullable=True, index=True),
    Column("properties", JsonDoc, nullable=False),
    Column("tags", JsonDoc, nullable=False),
    # The sync source that owns this image (None: a local image). Set => read-only here.
    Column("origin", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

image_members = Table(
    "image_members",
    metadata,
    Column("image_id", String(36), ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
    Column("member_id", String(64), primary_key=True, index=True),
    Column("status", String(20), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

HASH_ALGO = "sha512"
CHUNK_SIZE = 1 << 20
_TMP_DIR = "tmp"


@dataclass(frozen=True, slots=True)
class ImageRecord:
    id: str
    name: str | None
    status: str
    size: int | None
    virtual_size: int | None
    min_disk: int
    min_ram: int
    disk_format: str | None
    container_format: str | None
    owner: str | None
    visibility: str
    protected: bool
    os_hidden: bool
    checksum: str | None
    os_hash_algo: str | None
    os_hash_value: str | None
    properties: dict[str, Any]
    tags: tuple[str, ...]
    created_at: dt.datetime
    updated_at: dt.datetime
    blob_sha256: str | None
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class MemberRecord:
    image_id: str
    member_id: str
    status: str
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What was learnt while writing a blob: its size and its three digests."""

    sha256: str
    size: int
    md5: str
    sha512: str


def _record(row: Row[Any]) -> ImageRecord:
    m = row._mapping
    return ImageRecord(
        id=m["id"],
        name=m["name"],
        status=m["status"],
        size=m["size"],
        virtual_size=m["virtual_size"],
        min_disk=m["min_disk"],
        min_ram=m["min_ram"],
        disk_format=m["disk_format"],
        container_format=m["container_format"],
        owner=m["owner"],
        visibility=m["visibility"],
        protected=bool(m["protected"]),
        os_hidden=bool(m["os_hidden"]),
        checksum=m["checksum"],
        os_hash_algo=m["os_hash_algo"],
        os_hash_value=m["os_hash_value"],
        properties=dict(m["properties"] or {}),
        tags=tuple(m["tags"] or ()),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        blob_sha256=m["blob_sha256"],
        origin=m["origin"],
    )


def _member(row: Row[Any]) -> MemberRecord:
    m = row._mapping
    return MemberRecord(
        image_id=m["image_id"],
        member_id=m["member_id"],
        status=m["status"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )


def blob_path(data_dir: Path, record: ImageRecord) -> Path:
    """Where the data of ``record`` lives; NotFound if the image has no data."""
    if record.blob_sha256 is None:
        raise NotFound(f"Image {record.id} has no data.")
    return BlobStore(data_dir).path(record.blob_sha256)


class _Hasher:
    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha512 = hashlib.sha512()
        self.size = 0

    def update(self, data: bytes) -> None:
        self.sha256.update(data)
        self.md5.update(data)
        self.sha512.update(data)
        self.size += len(data)

    def info(self) -> BlobInfo:
        return BlobInfo(
            sha256=self.sha256.hexdigest(),
            size=self.size,
            md5=self.md5.hexdigest(),
            sha512=self.sha512.hexdigest(),
        )


@dataclass
class PendingBlob:
    """A blob written and fsync'd to a temp file, not yet in place (see ``BlobStore``)."""

    tmp_path: Path
    info: BlobInfo


@dataclass
class BlobStore:
    """Content-addressed files under ``<data_dir>/images``: ``<sha256 hex>`` each."""

    data_dir: Path
    root: Path = field(init=False)

    def __post_init__(self) -> None:
        self.root = self.data_dir / "images"

    def path(self, sha256: str) -> Path:
        return self.root / sha256

    def _tmp_dir(self) -> Path:
        tmp = self.root / _TMP_DIR
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp

    async def write_stream(
        self, chunks: AsyncIterable[bytes], *, max_bytes: int, label: str = "blob"
    ) -> PendingBlob:
        """Write ``chunks`` to a temp file, hashing them; PayloadTooLarge past ``max_bytes``.

        The data never sits in memory beyond one buffered megabyte; file writes and
        hashing run in a worker thread so the event loop keeps serving.
        """
        tmp = self._tmp_dir() / f"{label}.{uuid.uuid4().hex}.part"
        hasher = _Hasher()
        fh = await asyncio.to_thread(open, tmp, "wb")
        try:
            buffer = bytearray()

            def flush(data: bytes) -> None:
                hasher.update(data)
                fh.write(data)

            async for chunk in chunks:
                if not chunk:
                    continue
                buffer += chunk
                if hasher.size + len(buffer) > max_bytes:
                    raise PayloadTooLarge(
                        f"Image data exceeds the size limit of this site ({max_bytes} bytes)."
                    )
                if len(buffer) >= CHUNK_SIZE:
                    data, buffer = bytes(buffer), bytearray()
                    await asyncio.to_thread(flush, data)
            if buffer:
                await asyncio.to_thread(flush, bytes(buffer))

            def sync() -> None:
                fh.flush()
                os.fsync(fh.fileno())
                fh.close()

            await asyncio.to_thread(sync)
        except BaseException:
            fh.close()
            tmp.unlink(missing_ok=True)
            raise
        return PendingBlob(tmp_path=tmp, info=hasher.info())

    async def write_bytes(self, data: bytes, *, max_bytes: int) -> PendingBlob:
        async def one() -> AsyncIterable[bytes]:
            for i in range(0, len(data), CHUNK_SIZE):
                yield data[i : i + CHUNK_SIZE]

        return await self.write_stream(one(), max_bytes=max_bytes)

    async def write_file(self, source: Path, *, max_bytes: int) -> PendingBlob:
        async def chunks() -> AsyncIterable[bytes]:
            fh = await asyncio.to_thread(open, source, "rb")
            try:
                while True:
                    chunk = await asyncio.to_thread(fh.read, CHUNK_SIZE)
                    if not chunk:
                        return
                    yield chunk
            finally:
                fh.close()

        return await self.write_stream(chunks(), max_bytes=max_bytes)

    def place(self, pending: PendingBlob) -> Path:
        """Rename the temp file into place (or drop it: the content is already there)."""
        final = self.path(pending.info.sha256)
        if final.exists():
            pending.tmp_path.unlink(missing_ok=True)
        else:
            os.replace(pending.tmp_path, final)
            fsync_dir(self.root)
        return final

    def discard(self, pending: PendingBlob) -> None:
        pending.tmp_path.unlink(missing_ok=True)

    def remove(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def clear_temp_files(self) -> int:
        tmp = self.root / _TMP_DIR
        if not tmp.is_dir():
            return 0
        removed = 0
        for part in tmp.iterdir():
            part.unlink(missing_ok=True)
            removed += 1
        return removed


# The list's statements, built once: SQLAlchemy caches their compiled form by a key it
# derives from the statement object, which is memoised on a statement built once.
_ALL_IMAGES = select(images).order_by(images.c.created_at, images.c.id)
_MEMBER_STATUSES = select(image_members.c.image_id, image_members.c.status).where(
    image_members.c.member_id == bindparam("member_id")
)


class ImageRepository:
    """All SQL about images and their members. Policy is the caller's business."""

    def __init__(self, store: Store):
        self.store = store

    # -- reads ---------------------------------------------------------------------

    async def get(self, image_id: str) -> ImageRecord | None:
        async with self.store.read() as conn:
            row = (await conn.execute(select(images).where(images.c.id == image_id))).first()
        return _record(row) if row is not None else None

    async def require(self, image_id: str) -> ImageRecord:
        record = await self.get(image_id)
        if record is None:
            raise NotFound(f"No image found with ID {image_id}")
        return record

    async def list_all(self) -> list[ImageRecord]:
        async with self.store.read() as conn:
            rows = await conn.execute(select(images).order_by(images.c.created_at, images.c.id))
        return [_record(r) for r in rows]

    async def list_visible(
        self, *, project_id: str | None, all_projects: bool
    ) -> tuple[list[ImageRecord], dict[str, str]]:
        """Images a caller may see, and the caller's member status for shared ones.

        ``all_projects`` (admin): every image, and no statuses. Otherwise the project's
        own images, public and community images, and images shared with the project.
        Read again only after a write (``Store.memo``): clients list images over and
        over (every ``--image NAME`` is a list).
        """
        records, statuses = await self.store.memo(
            ("image.list_visible", project_id, all_projects),
            lambda: self._read_visible(project_id, all_projects),
        )
        return list(records), dict(statuses)

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
            rows = await conn.execute(query)
            return tuple(_record(r) for r in rows), statuses

    async def blob_in_use(self, sha256: str) -> bool:
        async with self.store.read() as conn:
            return await _blob_refs(conn, sha256) > 0

    # -- writes --------------------------------------------------------------------

    async def create(
        self,
        *,
        owner: str | None,
        name: str | None = None,
        image_id: str | None = None,
        disk_format: str | None = None,
        container_format: str | None = None,
        visibility: str = "shared",
        min_disk: int = 0,
        min_ram: int = 0,
        protected: bool = False,
        os_hidden: bool = False,
        tags: Iterable[str] = (),
        properties: Mapping[str, Any] | None = None,
        origin: str | None = None,
        data: bytes | None = None,
        data_file: Path | None = None,
        data_dir: Path | None = None,
        max_bytes: int = 1 << 40,
    ) -> ImageRecord:
        """A new image, ``queued``; or ``active`` when ``data``/``data_file`` is given.

        With data, ``data_dir`` (the site's data directory) is required: the blob is
        written and in place before the row is committed.
        """
        now = utcnow()
        new_id = image_id or str(uuid.uuid4())
        pending: PendingBlob | None = None
        blobs: BlobStore | None = None
        if data is not None or data_file is not None:
            if data_dir is None:
                raise ValidationFailed("data_dir is needed to store image data", field="data_dir")
            blobs = BlobStore(data_dir)
            if data_file is not None:
                pending = await blobs.write_file(data_file, max_bytes=max_bytes)
            else:
                assert data is not None
                pending = await blobs.write_bytes(data, max_bytes=max_bytes)
        values: dict[str, Any] = {
            "id": new_id,
            "name": name,
            "status": "queued",
            "disk_format": disk_format,
            "container_format": container_format,
            "owner": owner,
            "visibility": visibility,
            "protected": protected,
            "os_hidden": os_hidden,
            "min_disk": min_disk,
            "min_ram": min_ram,
            "properties": dict(properties or {}),
            "tags": _unique(tags),
            "origin": origin,
            "created_at": now,
            "updated_at": now,
        }
        if pending is not None:
            values.update(_data_columns(pending.info))
        try:
            async with self.store.write() as conn:
                exists = await conn.execute(select(images.c.id).where(images.c.id == new_id))
                if exists.first() is not None:
                    raise Conflict(f"Image with identifier {new_id} already exists!")
                if pending is not None and blobs is not None:
                    blobs.place(pending)
                    pending = None
                await conn.execute(insert(images).values(**values))
        finally:
            if pending is not None and blobs is not None:
                blobs.discard(pending)
        return await self.require(new_id)

    async def update(self, image_id: str, **changes: Any) -> ImageRecord:
        """Set columns (name, visibility, min_ram, properties, tags, ...) of one image."""
        allowed = {c.name for c in images.columns} - {"id", "created_at"}
        unknown = set(changes) - allowed
        if unknown:
            raise ValidationFailed(f"unknown image field(s): {sorted(unknown)}")
        if "tags" in changes:
            changes["tags"] = _unique(changes["tags"])
        changes["updated_at"] = utcnow()
        async with self.store.write() as conn:
            result = await conn.execute(
                update(images).where(images.c.id == image_id).values(**changes)
            )
            if result.rowcount == 0:
                raise NotFound(f"No image found with ID {image_id}")
        return await self.require(image_id)

    async def begin_upload(self, image_id: str, *, status: str = "saving") -> ImageRecord:
        """``queued`` → ``saving`` (or ``uploading`` when staging); Conflict otherwise."""
        async with self.store.write() as conn:
            row = (await conn.execute(select(images).where(images.c.id == image_id))).first()
            if row is None:
                raise NotFound(f"No image found with ID {image_id}")
            current = row._mapping["status"]
            if current != "queued":
                raise Conflict(
                    f"Image {image_id} is {current}: data can only be uploaded to a queued image."
                )
            await conn.execute(
                update(images)
                .where(images.c.id == image_id)
                .values(status=status, updated_at=utcnow())
            )
        return await self.require(image_id)

    async def abort_upload(self, image_id: str) -> None:
        """Back to ``queued`` after a failed upload or stage (the image may be gone: fine)."""
        async with self.store.write() as conn:
            await conn.execute(
                update(images)
                .where(images.c.id == image_id, _receiving_data())
                .values(status="queued", updated_at=utcnow())
            )

    async def finish_upload(
        self,
        image_id: str,
        *,
        pending: PendingBlob,
        blobs: BlobStore,
        final_status: str = "active",
    ) -> ImageRecord:
        """Place the blob, then record size and digests with ``final_status``, durably.

        ``final_status`` is ``active`` for an upload, ``uploading`` for a staged
        import (``activate_staged`` finishes it).
        """
        try:
            async with self.store.write() as conn:
                row = (await conn.execute(select(images).where(images.c.id == image_id))).first()
                if row is None or row._mapping["status"] not in ("saving", "uploading"):
                    raise Gone(f"Image {image_id} was deleted while its data was being uploaded.")
                blobs.place(pending)
                columns = _data_columns(pending.info)
                columns["status"] = final_status
                await conn.execute(
                    update(images)
                    .where(images.c.id == image_id)
                    .values(updated_at=utcnow(), **columns)
                )
        finally:
            blobs.discard(pending)
        return await self.require(image_id)

    async def activate_staged(self, image_id: str) -> ImageRecord:
        """A staged image (``uploading`` with its data in place) becomes ``active``."""
        async with self.store.write() as conn:
            result = await conn.execute(
                update(images)
                .where(
                    images.c.id == image_id,
                    images.c.status == "uploading",
                    images.c.blob_sha256.is_not(None),
                )
                .values(status="active", updated_at=utcnow())
            )
            if result.rowcount == 0:
                raise Conflict(
                    f"Image {image_id} needs to be staged before 'glance-direct' can import it."
                )
        return await self.require(image_id)

    async def delete(self, image_id: str, *, data_dir: Path | None = None) -> ImageRecord:
        """Delete the row (and members); remove the blob if no other image uses it."""
        async with self.store.write() as conn:
            row = (await conn.execute(select(images).where(images.c.id == image_id))).first()
            if row is None:
                raise NotFound(f"No image found with ID {image_id}")
            record = _record(row)
            await conn.execute(delete(image_members).where(image_members.c.image_id == image_id))
            await conn.execute(delete(images).where(images.c.id == image_id))
            sha = record.blob_sha256
            if sha is not None and data_dir is not None and await _blob_refs(conn, sha) == 0:
                BlobStore(data_dir).remove(sha)
        return record

    async def recover_interrupted_uploads(self, *, data_dir: Path) -> int:
        """At start: uploads cut by a crash go back to ``queued``; temp files are removed."""
        BlobStore(data_dir).clear_temp_files()
        async with self.store.write() as conn:
            result = await conn.execute(
                update(images).where(_receiving_data()).values(status="queued", updated_at=utcnow())
            )
            return int(result.rowcount or 0)

    # -- members -------------------------------------------------------------------

    async def members(self, image_id: str) -> list[MemberRecord]:
        async with self.store.read() as conn:
            rows = await conn.execute(
                select(image_members)
                .where(image_members.c.image_id == image_id)
                .order_by(image_members.c.created_at, image_members.c.member_id)
            )
        return [_member(r) for r in rows]

    async def member(self, image_id: str, member_id: str) -> MemberRecord | None:
        async with self.store.read() as conn:
            row = (
                await conn.execute(
                    select(image_members).where(
                        image_members.c.image_id == image_id,
                        image_members.c.member_id == member_id,
                    )
                )
            ).first()
        return _member(row) if row is not None else None

    async def add_member(self, image_id: str, member_id: str) -> MemberRecord:
        now = utcnow()
        async with self.store.write() as conn:
            existing = await conn.execute(
                select(image_members.c.member_id).where(
                    image_members.c.image_id == image_id, image_members.c.member_id == member_id
                )
            )
            if existing.first() is not None:
                raise Conflict(f"Member {member_id} already exists for image {image_id}.")
            await conn.execute(
                insert(image_members).values(
                    image_id=image_id,
                    member_id=member_id,
                    status="pending",
                    created_at=now,
                    updated_at=now,
                )
            )
        found = await self.member(image_id, member_id)
        assert found is not None
        return found

    async def set_member_status(self, image_id: str, member_id: str, status: str) -> MemberRecord:
        async with self.store.write() as conn:
            result = await conn.execute(
                update(image_members)
                .where(image_members.c.image_id == image_id, image_members.c.member_id == member_id)
                .values(status=status, updated_at=utcnow())
            )
            if result.rowcount == 0:
                raise NotFound(f"Member {member_id} not found for image {image_id}.")
        found = await self.member(image_id, member_id)
        assert found is not None
        return found

    async def remove_member(self, image_id: str, member_id: str) -> None:
        async with self.store.write() as conn:
            result = await conn.execute(
                delete(image_members).where(
                    image_members.c.image_id == image_id, image_members.c.member_id == member_id
                )
            )
            if result.rowcount == 0:
                raise NotFound(f"Member {member_id} not found for image {image_id}.")


async def _blob_refs(conn: AsyncConnection, sha256: str) -> int:
    count = await conn.execute(
        select(func.count()).select_from(images).where(images.c.blob_sha256 == sha256)
    )
    return int(count.scalar_one())


def _receiving_data() -> ColumnElement[bool]:
    """Rows whose data is on its way in (an upload, or a stage not yet complete)."""
    return or_(
        images.c.status == "saving",
        (images.c.status == "uploading") & images.c.blob_sha256.is_(None),
    )


def _data_columns(info: BlobInfo) -> dict[str, Any]:
    return {
        "status": "active",
        "size": info.size,
        "checksum": info.md5,
        "os_hash_algo": HASH_ALGO,
        "os_hash_value": info.sha512,
        "blob_sha256": info.sha256,
    }


def _unique(tags: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(tags))
