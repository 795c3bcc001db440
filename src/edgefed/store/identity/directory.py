"""Domains, projects, users and groups, and who is in which group.

Deleting a project, a user or a group deletes what hangs on it in the same transaction:
the role assignments on the project, of the user or of the group, and the group
memberships of the user or of the group.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select

from edgefed.store.engine import AsyncConnection, Store
from edgefed.store.identity.base import IdentityRecords
from edgefed.store.identity.generation import mark_identity_changed
from edgefed.store.identity.records import DomainRecord, GroupRecord, ProjectRecord, UserRecord
from edgefed.store.identity.tables import (
    assignments,
    domains,
    group_members,
    groups,
    projects,
    users,
)
from edgefed.store.records import RecordMapper, column_values


class Domains(IdentityRecords[DomainRecord]):
    table = domains
    mapper = RecordMapper(DomainRecord)
    what = "domain"


class Projects(IdentityRecords[ProjectRecord]):
    table = projects
    mapper = RecordMapper(ProjectRecord)
    what = "project"

    async def delete(self, *, id: str) -> bool:
        """The project and the role assignments on it."""
        try:
            async with self.store.write() as conn:
                result = await conn.execute(delete(projects).where(projects.c.id == id))
                await conn.execute(
                    delete(assignments).where(
                        assignments.c.target_type == "project", assignments.c.target_id == id
                    )
                )
        finally:
            self._written()
        return bool(result.rowcount)


class Users(IdentityRecords[UserRecord]):
    table = users
    mapper = RecordMapper(UserRecord)
    what = "user"

    async def delete(self, *, id: str) -> bool:
        """The user, its role assignments and its group memberships."""
        try:
            async with self.store.write() as conn:
                result = await conn.execute(delete(users).where(users.c.id == id))
                await _delete_actor(conn, "user", id)
        finally:
            self._written()
        return bool(result.rowcount)

    async def in_group(self, group_id: str) -> list[UserRecord]:
        """The members of ``group_id``, by name."""
        query = (
            select(users)
            .join(group_members, group_members.c.user_id == users.c.id)
            .where(group_members.c.group_id == group_id)
            .order_by(users.c.name, users.c.id)
        )
        async with self.store.read() as conn:
            return self.mapper.all(await conn.execute(query))

    async def ensure_shadow(self, *, issuer: str, user: Mapping[str, Any]) -> bool:
        """Create, idempotently, the record of a user of another fleet site (seed 001:
        federation with idempotent shadow creation), with the token's own (predictable)
        id and ``origin`` = the issuing site, so it is locked against local edits.

        Bookkeeping only: no password, no roles. Only a user whose domain exists here is
        recorded, and never over a user holding that id or that name: whether it was
        created.
        """
        user_id = str(user["id"])
        name = str(user["name"])
        domain_id = str(user["domain"]["id"])
        async with self.store.write() as conn:
            found = await conn.execute(select(domains.c.id).where(domains.c.id == domain_id))
            if found.first() is None:
                return False
            taken = await conn.execute(
                select(users.c.id).where(
                    or_(
                        users.c.id == user_id,
                        and_(users.c.name == name, users.c.domain_id == domain_id),
                    )
                )
            )
            if taken.first() is not None:
                return False
            shadow = UserRecord(
                id=user_id,
                name=name,
                domain_id=domain_id,
                extra={"federated_from": issuer},
                origin=issuer,
            )
            await conn.execute(insert(users).values(**column_values(shadow)))
        self._written()
        return True


class Groups(IdentityRecords[GroupRecord]):
    table = groups
    mapper = RecordMapper(GroupRecord)
    what = "group"

    async def delete(self, *, id: str) -> bool:
        """The group, its role assignments and its memberships."""
        try:
            async with self.store.write() as conn:
                result = await conn.execute(delete(groups).where(groups.c.id == id))
                await _delete_actor(conn, "group", id)
        finally:
            self._written()
        return bool(result.rowcount)

    async def of_user(self, user_id: str) -> list[GroupRecord]:
        """The groups ``user_id`` is in, by name."""
        query = (
            select(groups)
            .join(group_members, group_members.c.group_id == groups.c.id)
            .where(group_members.c.user_id == user_id)
            .order_by(groups.c.name, groups.c.id)
        )
        async with self.store.read() as conn:
            return self.mapper.all(await conn.execute(query))


class GroupMembers:
    """Who is in which group: (group, user) pairs."""

    def __init__(self, store: Store):
        self.store = store

    def _pair(self, group_id: str, user_id: str) -> Any:
        return and_(group_members.c.group_id == group_id, group_members.c.user_id == user_id)

    async def add(self, *, group_id: str, user_id: str) -> None:
        """Put the user in the group (nothing when it is in already)."""
        try:
            async with self.store.write() as conn:
                found = await conn.execute(
                    select(group_members).where(self._pair(group_id, user_id))
                )
                if found.first() is None:
                    await conn.execute(
                        insert(group_members).values(group_id=group_id, user_id=user_id)
                    )
        finally:
            mark_identity_changed(self.store)

    async def remove(self, *, group_id: str, user_id: str) -> bool:
        """Take the user out of the group; whether it was in."""
        try:
            async with self.store.write() as conn:
                result = await conn.execute(
                    delete(group_members).where(self._pair(group_id, user_id))
                )
        finally:
            mark_identity_changed(self.store)
        return bool(result.rowcount)

    async def contains(self, *, group_id: str, user_id: str) -> bool:
        async with self.store.read() as conn:
            found = await conn.execute(
                select(group_members.c.user_id).where(self._pair(group_id, user_id))
            )
            return found.first() is not None

    async def group_ids_of(self, user_id: str) -> list[str]:
        """The ids of the groups ``user_id`` is in (the grant path needs no more)."""
        query = select(group_members.c.group_id).where(group_members.c.user_id == user_id)
        async with self.store.read() as conn:
            return [str(row[0]) for row in await conn.execute(query)]


async def _delete_actor(conn: AsyncConnection, actor_type: str, actor_id: str) -> None:
    await conn.execute(
        delete(assignments).where(
            assignments.c.actor_type == actor_type, assignments.c.actor_id == actor_id
        )
    )
    column = group_members.c.user_id if actor_type == "user" else group_members.c.group_id
    await conn.execute(delete(group_members).where(column == actor_id))
