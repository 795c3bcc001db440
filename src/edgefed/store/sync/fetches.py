"""Image blob fetches at a receiver: which received images still need their data.

An image row arrives by push; its blob is pulled afterwards (sync/images.py). The push
records the need here in its own transaction (``want_blob``) and leaves the image
``queued``; the fetch turns it active once the blob is in place and checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update

from edgefed.store import image
from edgefed.store.engine import AsyncConnection, Store, upsert_insert
from edgefed.store.sync.tables import DONE, FAILING, PENDING, fetches

MAX_ERROR_LENGTH = 500


@dataclass(frozen=True)
class Fetch:
    image_id: str
    sha256: str
    source: str
    size: int | None
    state: str
    attempts: int


class BlobFetches:
    def __init__(self, store: Store):
        self.store = store

    async def pending_fetches(self) -> list[Fetch]:
        async with self.store.read() as conn:
            rows = await conn.execute(select(fetches).where(fetches.c.state != DONE))
            return [
                Fetch(r.image_id, r.sha256, r.source, r.size, r.state, int(r.attempts))
                for r in rows
            ]

    async def fetch_failed(self, image_id: str, error: str) -> None:
        async with self.store.write() as conn:
            await conn.execute(
                update(fetches)
                .where(fetches.c.image_id == image_id)
                .values(
                    state=FAILING,
                    last_error=error[:MAX_ERROR_LENGTH],
                    attempts=fetches.c.attempts + 1,
                )
            )

    async def fetch_done(self, image_id: str, *, sha256: str) -> None:
        """The blob is in place: the fetch is done and the image (still that blob) active."""
        async with self.store.write() as conn:
            await conn.execute(
                update(fetches)
                .where(fetches.c.image_id == image_id, fetches.c.sha256 == sha256)
                .values(state=DONE, last_error=None)
            )
            await conn.execute(
                update(image.images)
                .where(image.images.c.id == image_id, image.images.c.blob_sha256 == sha256)
                .values(status="active")
            )

    async def fetch_states(self, *, source: str | None = None) -> list[dict[str, Any]]:
        query = select(fetches)
        if source is not None:
            query = query.where(fetches.c.source == source)
        async with self.store.read() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

    async def images_with_blob(self, sha256: str) -> list[str]:
        """The images here whose data is blob ``sha256`` (a source serves it to receivers
        those images are marked for)."""
        query = select(image.images.c.id).where(image.images.c.blob_sha256 == sha256)
        async with self.store.read() as conn:
            return [str(r[0]) for r in await conn.execute(query)]


async def want_blob(
    conn: AsyncConnection, *, image_id: str, sha256: str, source: str, size: int | None
) -> None:
    """Record that ``image_id`` needs blob ``sha256`` from ``source`` (the fetcher pulls it)."""
    stmt = upsert_insert(conn, fetches)
    values = {"image_id": image_id, "sha256": sha256, "source": source, "size": size,
              "state": PENDING, "attempts": 0, "last_error": None}  # fmt: skip
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["image_id"],
            set_={k: stmt.excluded[k] for k in values if k != "image_id"},
        ),
        values,
    )
