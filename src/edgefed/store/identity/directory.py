"""Domains, projects, users and groups, and who is in which group.

Deleting a project, a user or a group deletes what hangs on it in the same transaction:
the role assignments on the project, of the user or of the group, and the group
memberships of the user or of the group.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

from sqlalchemy import Table, and_, delete, insert, or_, select
from sqlalchemy.sql import Executable, Select

from edgefed.store.identity.base import IdentityRecords, Pairs
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

A = TypeVar("A", UserRecord, GroupRecord)


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
        return await self.delete_with(
            id,
            delete(assignments).where(
                assignments.c.target_type == "project", assignments.c.target_id == id
            ),
        )


class _Actors(IdentityRecords[A]):
    """Users and groups: they hold role assignments and memberships, which go with them."""

    actor_type: ClassVar[str]

    async def delete(self, *, id: str) -> bool:
        """The record, its role assignments and its group memberships."""
        return await self.delete_with(id, *_hanging_on(self.actor_type, id))


class Users(_Actors[UserRecord]):
    table = users
    mapper = RecordMapper(UserRecord)
    what = actor_type = "user"

    async def in_group(self, group_id: str) -> list[UserRecord]:
        """The members of ``group_id``, by name."""
        return await self.records_of(_paired(users, "user_id", with_=("group_id", group_id)))

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


class Groups(_Actors[GroupRecord]):
    table = groups
    mapper = RecordMapper(GroupRecord)
    what = actor_type = "group"

    async def of_user(self, user_id: str) -> list[GroupRecord]:
        """The groups ``user_id`` is in, by name."""
        return await self.records_of(_paired(groups, "group_id", with_=("user_id", user_id)))


class GroupMembers(Pairs):
    """Who is in which group: ``group_id=…, user_id=…``."""

    table = group_members
    columns = ("group_id", "user_id")

    async def group_ids_of(self, user_id: str) -> list[str]:
        """The ids of the groups ``user_id`` is in (the grant path needs no more)."""
        query = select(group_members.c.group_id).where(group_members.c.user_id == user_id)
        async with self.store.read() as conn:
            return [str(row[0]) for row in await conn.execute(query)]


def _paired(table: Table, column: str, *, with_: tuple[str, str]) -> Select[Any]:
    """The rows of ``table`` (users, groups) whose id is paired (in ``column`` of the
    memberships) with the id ``with_`` names, by name."""
    other, other_id = with_
    return (
        select(table)
        .join(group_members, group_members.c[column] == table.c.id)
        .where(group_members.c[other] == other_id)
        .order_by(table.c.name, table.c.id)
    )


def _hanging_on(actor_type: str, actor_id: str) -> tuple[Executable, Executable]:
    """The role assignments and the memberships of a user or a group."""
    column = group_members.c.user_id if actor_type == "user" else group_members.c.group_id
    return (
        delete(assignments).where(
            assignments.c.actor_type == actor_type, assignments.c.actor_id == actor_id
        ),
        delete(group_members).where(column == actor_id),
    )
