"""Releases owed to other sites: attachments of their volumes that this site's servers
no longer use but that their site could not be told of (the link was cut, the site
down). Kept until that site has answered; the compute service asks again."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, update

from edgefed.store.compute.tables import remote_releases
from edgefed.store.engine import Store
from edgefed.store.schema import utcnow


@dataclass(frozen=True, slots=True)
class PendingRelease:
    attachment_id: str
    site: str
    attempts: int
    last_error: str | None


class PendingReleases:
    def __init__(self, store: Store):
        self.store = store

    async def add(self, *, attachment_id: str, site: str, error: str) -> None:
        """Owe ``site`` the release of ``attachment_id`` (once, however often asked)."""
        async with self.store.write() as conn:
            found = await conn.execute(
                select(remote_releases.c.attachment_id).where(
                    remote_releases.c.attachment_id == attachment_id
                )
            )
            if found.first() is None:
                await conn.execute(
                    remote_releases.insert().values(
                        attachment_id=attachment_id,
                        site=site,
                        attempts=1,
                        last_error=error,
                        created_at=utcnow(),
                    )
                )

    async def owed(self) -> list[PendingRelease]:
        query = select(remote_releases).order_by(remote_releases.c.created_at)
        async with self.store.read() as conn:
            return [
                PendingRelease(
                    attachment_id=r.attachment_id,
                    site=r.site,
                    attempts=r.attempts,
                    last_error=r.last_error,
                )
                for r in await conn.execute(query)
            ]

    async def done(self, attachment_id: str) -> None:
        async with self.store.write() as conn:
            await conn.execute(
                delete(remote_releases).where(remote_releases.c.attachment_id == attachment_id)
            )

    async def failed(self, attachment_id: str, error: str) -> None:
        async with self.store.write() as conn:
            await conn.execute(
                update(remote_releases)
                .where(remote_releases.c.attachment_id == attachment_id)
                .values(attempts=remote_releases.c.attempts + 1, last_error=error)
            )
