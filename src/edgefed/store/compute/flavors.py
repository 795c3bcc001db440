"""``FlavorRepository``: flavors and their access lists.

A private flavor is visible to the projects on its access list; a flavor a sync source
delivered (``origin`` set) is read-only here, its access list included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from edgefed.core.errors import Conflict, NotFound
from edgefed.store.compute.records import FlavorRecord, locked, to_record
from edgefed.store.compute.tables import flavor_access, flavors
from edgefed.store.engine import Store
from edgefed.store.schema import utcnow


class FlavorRepository:
    def __init__(self, store: Store):
        self.store = store

    async def create(self, *, values: Mapping[str, Any]) -> FlavorRecord:
        row = {"extra_specs": {}, "origin": None, "created_at": utcnow(), **values}
        try:
            async with self.store.write() as conn:
                await conn.execute(insert(flavors).values(**row))
        except IntegrityError as exc:
            raise Conflict(
                f"Flavor with name {row['name']} or ID {row['id']} already exists."
            ) from exc
        flavor = await self.get(str(row["id"]))
        assert flavor is not None
        return flavor

    async def ensure(self, *, values: Mapping[str, Any]) -> None:
        """Create the flavor unless one with its id or name exists (seeding, idempotent)."""
        async with self.store.write() as conn:
            found = await conn.execute(
                select(flavors.c.id).where(
                    (flavors.c.id == values["id"]) | (flavors.c.name == values["name"])
                )
            )
            if found.first() is None:
                await conn.execute(
                    insert(flavors).values(extra_specs={}, created_at=utcnow(), **values)
                )

    async def get(self, flavor_id: str) -> FlavorRecord | None:
        async with self.store.read() as conn:
            row = (await conn.execute(select(flavors).where(flavors.c.id == flavor_id))).first()
        return None if row is None else to_record(FlavorRecord, row)

    async def list_all(self) -> list[FlavorRecord]:
        async with self.store.read() as conn:
            rows = await conn.execute(select(flavors))
            return [to_record(FlavorRecord, r) for r in rows]

    async def delete(self, flavor: FlavorRecord) -> None:
        if flavor.origin:
            raise locked("Flavor", flavor.id, flavor.origin)
        async with self.store.write() as conn:
            await conn.execute(delete(flavors).where(flavors.c.id == flavor.id))
            await conn.execute(delete(flavor_access).where(flavor_access.c.flavor_id == flavor.id))

    async def update(self, flavor: FlavorRecord, **values: Any) -> FlavorRecord:
        if flavor.origin:
            raise locked("Flavor", flavor.id, flavor.origin)
        async with self.store.write() as conn:
            await conn.execute(update(flavors).where(flavors.c.id == flavor.id).values(**values))
        updated = await self.get(flavor.id)
        if updated is None:
            raise NotFound(f"Flavor {flavor.id} could not be found.")
        return updated

    async def access_list(self, flavor_id: str) -> list[str]:
        async with self.store.read() as conn:
            rows = await conn.execute(
                select(flavor_access.c.project_id).where(flavor_access.c.flavor_id == flavor_id)
            )
            return sorted(r.project_id for r in rows)

    async def projects_with_access(self, project_id: str) -> set[str]:
        async with self.store.read() as conn:
            rows = await conn.execute(
                select(flavor_access.c.flavor_id).where(flavor_access.c.project_id == project_id)
            )
            return {r.flavor_id for r in rows}

    async def add_access(self, flavor: FlavorRecord, project_id: str) -> None:
        if flavor.origin:
            raise locked("Flavor", flavor.id, flavor.origin)
        try:
            async with self.store.write() as conn:
                await conn.execute(
                    insert(flavor_access).values(flavor_id=flavor.id, project_id=project_id)
                )
        except IntegrityError as exc:
            raise Conflict(
                f"Flavor access already exists for flavor {flavor.id} and project "
                f"{project_id} combination."
            ) from exc

    async def remove_access(self, flavor: FlavorRecord, project_id: str) -> None:
        if flavor.origin:
            raise locked("Flavor", flavor.id, flavor.origin)
        async with self.store.write() as conn:
            result = await conn.execute(
                delete(flavor_access).where(
                    and_(
                        flavor_access.c.flavor_id == flavor.id,
                        flavor_access.c.project_id == project_id,
                    )
                )
            )
        if result.rowcount == 0:
            raise NotFound(f"Flavor access not found for {flavor.id} / {project_id} combination.")
