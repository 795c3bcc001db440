"""Roles, what each implies, and who holds which role where (role assignments).

Deleting a role deletes its implications and its assignments (the tables' cascades).
Granting is idempotent; an assignment is known by its five key columns, its ``origin``
is the sync source that delivered it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select

from edgefed.store.engine import Store
from edgefed.store.identity.base import IdentityRecords, Pairs
from edgefed.store.identity.generation import mark_identity_changed
from edgefed.store.identity.records import AssignmentRecord, RoleRecord
from edgefed.store.identity.tables import assignments, role_implications, roles
from edgefed.store.records import RecordMapper

_KEY = ("actor_type", "actor_id", "target_type", "target_id", "role_id")


class Roles(IdentityRecords[RoleRecord]):
    table = roles
    mapper = RecordMapper(RoleRecord)
    what = "role"


class RoleImplications(Pairs):
    """Which role implies which: ``prior_role_id=…, implied_role_id=…`` (holding the
    prior role gives the implied one)."""

    table = role_implications
    columns = ("prior_role_id", "implied_role_id")


class Assignments:
    """Role assignments; ``assignment`` arguments are matched on their key, not their
    origin."""

    mapper = RecordMapper(AssignmentRecord)

    def __init__(self, store: Store):
        self.store = store

    @staticmethod
    def _key(assignment: AssignmentRecord) -> Any:
        return and_(*(assignments.c[name] == getattr(assignment, name) for name in _KEY))

    async def grant(self, *, assignment: AssignmentRecord) -> None:
        """Store ``assignment`` unless one with its key exists (then nothing changes)."""
        try:
            async with self.store.write() as conn:
                found = await conn.execute(
                    select(assignments.c.role_id).where(self._key(assignment))
                )
                if found.first() is None:
                    await conn.execute(
                        insert(assignments).values(
                            **{name: getattr(assignment, name) for name in (*_KEY, "origin")}
                        )
                    )
        finally:
            mark_identity_changed(self.store)

    async def find(self, *, assignment: AssignmentRecord) -> AssignmentRecord | None:
        """The stored assignment with the key of ``assignment`` (and its origin), or None."""
        async with self.store.read() as conn:
            found = self.mapper.all(
                await conn.execute(select(assignments).where(self._key(assignment)))
            )
        return found[0] if found else None

    async def revoke(self, *, assignment: AssignmentRecord) -> bool:
        """Delete the assignment with the key of ``assignment``; whether there was one."""
        try:
            async with self.store.write() as conn:
                result = await conn.execute(delete(assignments).where(self._key(assignment)))
        finally:
            mark_identity_changed(self.store)
        return bool(result.rowcount)

    async def list(
        self,
        *,
        actors: Sequence[tuple[str, str]] | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        role_ids: Iterable[str] | None = None,
    ) -> list[AssignmentRecord]:
        """Assignments of any of ``actors`` ((type, id) pairs; none: nobody's), on the
        target, of the roles; users before groups, by actor and target."""
        query = select(assignments)
        if actors is not None:
            if not actors:
                return []
            query = query.where(
                or_(
                    *(
                        and_(assignments.c.actor_type == kind, assignments.c.actor_id == actor)
                        for kind, actor in actors
                    )
                )
            )
        if target_type is not None:
            query = query.where(assignments.c.target_type == target_type)
        if target_id is not None:
            query = query.where(assignments.c.target_id == target_id)
        if role_ids is not None:
            query = query.where(assignments.c.role_id.in_(list(role_ids)))
        query = query.order_by(
            assignments.c.actor_type.desc(), assignments.c.actor_id, assignments.c.target_id
        )
        async with self.store.read() as conn:
            return self.mapper.all(await conn.execute(query))
