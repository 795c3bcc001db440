"""``KeypairRepository``: a user's SSH key pairs, unique per (user, name).

Key pairs travel with sync keyed by (user, name): their integer id is per site.
"""

from __future__ import annotations

from sqlalchemy import and_, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from edgefed.core.errors import Conflict
from edgefed.store.compute.records import KeypairRecord, locked, to_record
from edgefed.store.compute.tables import keypairs
from edgefed.store.engine import Store
from edgefed.store.schema import utcnow


class KeypairRepository:
    def __init__(self, store: Store):
        self.store = store

    async def create(
        self, *, user_id: str, name: str, type: str, public_key: str, fingerprint: str
    ) -> KeypairRecord:
        try:
            async with self.store.write() as conn:
                await conn.execute(
                    insert(keypairs).values(
                        user_id=user_id,
                        name=name,
                        type=type,
                        public_key=public_key,
                        fingerprint=fingerprint,
                        created_at=utcnow(),
                    )
                )
        except IntegrityError as exc:
            raise Conflict(f"Key pair '{name}' already exists.") from exc
        found = await self.get(user_id=user_id, name=name)
        assert found is not None
        return found

    async def get(self, *, user_id: str, name: str) -> KeypairRecord | None:
        async with self.store.read() as conn:
            row = (
                await conn.execute(
                    select(keypairs).where(
                        and_(keypairs.c.user_id == user_id, keypairs.c.name == name)
                    )
                )
            ).first()
        return None if row is None else to_record(KeypairRecord, row)

    async def list_for(self, *, user_id: str) -> list[KeypairRecord]:
        async with self.store.read() as conn:
            rows = await conn.execute(
                select(keypairs).where(keypairs.c.user_id == user_id).order_by(keypairs.c.name)
            )
            return [to_record(KeypairRecord, r) for r in rows]

    async def count(self, *, user_id: str) -> int:
        async with self.store.read() as conn:
            result = await conn.execute(
                select(func.count()).select_from(keypairs).where(keypairs.c.user_id == user_id)
            )
            return int(result.scalar_one())

    async def delete(self, keypair: KeypairRecord) -> None:
        if keypair.origin:
            raise locked("Key pair", keypair.name, keypair.origin)
        async with self.store.write() as conn:
            await conn.execute(delete(keypairs).where(keypairs.c.id == keypair.id))
