"""Tables and repository of the identity service (Keystone's data model, kept small).

Rows come back as plain dicts keyed by column name: the service renders them into
Keystone's JSON and nothing in between needs more structure.

Every write bumps a per-store *generation* counter (``identity_generation``), so the
in-memory caches built from this data (effective roles per user and scope, the token
catalog) know when they are stale, whichever code path wrote: the API or, later, the
sync receiver.

``origin`` names the sync source a row was received from (None = local); the service
refuses local writes to such rows. Password hashes are stored as argon2id PHC strings
(``$argon2id$v=19$m=…``), self-describing, so they can be copied verbatim to another
site.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    delete,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from edgefed.core.errors import Conflict
from edgefed.store.engine import AsyncConnection, Store
from edgefed.store.schema import JsonDoc, metadata

ID = String(64)

domains = Table(
    "identity_domains",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("description", Text, nullable=False, default=""),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("tags", JsonDoc, nullable=False, default=list),
    Column("extra", JsonDoc, nullable=False, default=dict),
    Column("origin", String(64), nullable=True),
)

projects = Table(
    "identity_projects",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(64), nullable=False),
    Column("domain_id", ID, ForeignKey("identity_domains.id"), nullable=False),
    Column("parent_id", ID, nullable=True),
    Column("description", Text, nullable=False, default=""),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("tags", JsonDoc, nullable=False, default=list),
    Column("extra", JsonDoc, nullable=False, default=dict),
    Column("origin", String(64), nullable=True),
    UniqueConstraint("domain_id", "name", name="uq_identity_projects_domain_name"),
)

users = Table(
    "identity_users",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(255), nullable=False),
    Column("domain_id", ID, ForeignKey("identity_domains.id"), nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("password_hash", Text, nullable=True),
    Column("password_set_at", Float, nullable=True),
    Column("default_project_id", ID, nullable=True),
    Column("extra", JsonDoc, nullable=False, default=dict),
    Column("origin", String(64), nullable=True),
    UniqueConstraint("domain_id", "name", name="uq_identity_users_domain_name"),
)

groups = Table(
    "identity_groups",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(64), nullable=False),
    Column("domain_id", ID, ForeignKey("identity_domains.id"), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("extra", JsonDoc, nullable=False, default=dict),
    Column("origin", String(64), nullable=True),
    UniqueConstraint("domain_id", "name", name="uq_identity_groups_domain_name"),
)

group_members = Table(
    "identity_group_members",
    metadata,
    Column("group_id", ID, ForeignKey("identity_groups.id", ondelete="CASCADE")),
    Column("user_id", ID, ForeignKey("identity_users.id", ondelete="CASCADE")),
    PrimaryKeyConstraint("group_id", "user_id", name="pk_identity_group_members"),
)

roles = Table(
    "identity_roles",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("domain_id", ID, nullable=True),
    Column("description", Text, nullable=False, default=""),
    Column("extra", JsonDoc, nullable=False, default=dict),
    Column("origin", String(64), nullable=True),
)

role_implications = Table(
    "identity_role_implications",
    metadata,
    Column("prior_role_id", ID, ForeignKey("identity_roles.id", ondelete="CASCADE")),
    Column("implied_role_id", ID, ForeignKey("identity_roles.id", ondelete="CASCADE")),
    PrimaryKeyConstraint("prior_role_id", "implied_role_id", name="pk_identity_role_implications"),
)

# actor_type: user | group; target_type: project | domain | system (target_id "all").
assignments = Table(
    "identity_assignments",
    metadata,
    Column("actor_type", String(8), nullable=False),
    Column("actor_id", ID, nullable=False),
    Column("target_type", String(8), nullable=False),
    Column("target_id", ID, nullable=False),
    Column("role_id", ID, ForeignKey("identity_roles.id", ondelete="CASCADE"), nullable=False),
    Column("origin", String(64), nullable=True),
    PrimaryKeyConstraint(
        "actor_type", "actor_id", "target_type", "target_id", "role_id",
        name="pk_identity_assignments",
    ),
)  # fmt: skip

regions = Table(
    "identity_regions",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("description", Text, nullable=False, default=""),
    Column("parent_region_id", String(255), nullable=True),
    Column("extra", JsonDoc, nullable=False, default=dict),
)

services = Table(
    "identity_services",
    metadata,
    Column("id", ID, primary_key=True),
    Column("type", String(255), nullable=False),
    Column("name", String(255), nullable=False, default=""),
    Column("description", Text, nullable=False, default=""),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("extra", JsonDoc, nullable=False, default=dict),
)

endpoints = Table(
    "identity_endpoints",
    metadata,
    Column("id", ID, primary_key=True),
    Column("service_id", ID, nullable=False),
    Column("region_id", String(255), nullable=True),
    Column("interface", String(8), nullable=False),
    Column("url", Text, nullable=False),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("extra", JsonDoc, nullable=False, default=dict),
)

app_credentials = Table(
    "identity_app_credentials",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(255), nullable=False),
    Column("user_id", ID, ForeignKey("identity_users.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", ID, nullable=False),
    Column("secret_hash", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("role_ids", JsonDoc, nullable=False, default=list),
    Column("unrestricted", Boolean, nullable=False, default=False),
    Column("expires_at", Float, nullable=True),
    Column("access_rules", JsonDoc, nullable=False, default=list),
    UniqueConstraint("user_id", "name", name="uq_identity_app_credentials_user_name"),
)

Row = dict[str, Any]
# The tables above, as the service names them when it calls the repository.
IdentityTable = Table

_generations: weakref.WeakKeyDictionary[Store, int] = weakref.WeakKeyDictionary()


def identity_generation(store: Store) -> int:
    """Bumped after every identity write on ``store``: caches compare it to know they are stale."""
    return _generations.get(store, 0)


def mark_identity_changed(store: Store) -> None:
    """Call after writing identity rows outside ``IdentityRepository`` (the sync receiver)."""
    _generations[store] = _generations.get(store, 0) + 1


_bump = mark_identity_changed


class IdentityRepository:
    """All SQL of the identity service. Methods take and return plain dicts."""

    def __init__(self, store: Store):
        self.store = store

    # ---- generic helpers -------------------------------------------------------------

    async def get(self, table: Table, row_id: str) -> Row | None:
        async with self.store.read() as conn:
            result = await conn.execute(select(table).where(table.c.id == row_id))
            row = result.first()
            return dict(row._mapping) if row is not None else None

    async def list_rows(
        self, table: Table, *, filters: Mapping[str, Any] | None = None, order_by: str = "name"
    ) -> list[Row]:
        query = select(table)
        for column, value in (filters or {}).items():
            if value is None:
                continue
            if isinstance(value, list | tuple | set | frozenset):
                query = query.where(table.c[column].in_(list(value)))
            else:
                query = query.where(table.c[column] == value)
        if order_by in table.c:
            query = query.order_by(table.c[order_by], table.c[_key(table)])
        async with self.store.read() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

    async def create(self, table: Table, values: Mapping[str, Any], *, what: str) -> Row:
        try:
            async with self.store.write() as conn:
                await conn.execute(insert(table).values(**values))
        except IntegrityError as exc:
            raise Conflict(_duplicate_message(what, values)) from exc
        finally:
            _bump(self.store)
        row = await self.get(table, str(values["id"]))
        assert row is not None
        return row

    async def update(
        self, table: Table, row_id: str, values: Mapping[str, Any], *, what: str
    ) -> Row | None:
        if values:
            try:
                async with self.store.write() as conn:
                    await conn.execute(update(table).where(table.c.id == row_id).values(**values))
            except IntegrityError as exc:
                raise Conflict(_duplicate_message(what, values)) from exc
            finally:
                _bump(self.store)
        return await self.get(table, row_id)

    async def delete(self, table: Table, row_id: str) -> bool:
        async with self.store.write() as conn:
            result = await conn.execute(delete(table).where(table.c.id == row_id))
            if table is users:
                await _delete_actor(conn, "user", row_id)
            elif table is groups:
                await _delete_actor(conn, "group", row_id)
            elif table is projects:
                await conn.execute(
                    delete(assignments).where(
                        assignments.c.target_type == "project", assignments.c.target_id == row_id
                    )
                )
        _bump(self.store)
        return bool(result.rowcount)

    async def upsert(self, table: Table, values: Mapping[str, Any]) -> None:
        """Insert or replace by id (bootstrap and, later, the sync receiver)."""
        async with self.store.write() as conn:
            existing = await conn.execute(select(table.c.id).where(table.c.id == values["id"]))
            if existing.first() is None:
                await conn.execute(insert(table).values(**values))
            else:
                await conn.execute(update(table).where(table.c.id == values["id"]).values(**values))
        _bump(self.store)

    # ---- lookups by name -------------------------------------------------------------

    async def find_by_name(self, table: Table, name: str, *, domain_id: str | None) -> Row | None:
        query = select(table).where(table.c.name == name)
        if domain_id is not None and "domain_id" in table.c:
            query = query.where(table.c.domain_id == domain_id)
        async with self.store.read() as conn:
            row = (await conn.execute(query)).first()
            return dict(row._mapping) if row is not None else None

    # ---- group membership ------------------------------------------------------------

    async def add_member(self, group_id: str, user_id: str) -> None:
        async with self.store.write() as conn:
            found = await conn.execute(
                select(group_members).where(
                    group_members.c.group_id == group_id, group_members.c.user_id == user_id
                )
            )
            if found.first() is None:
                await conn.execute(insert(group_members).values(group_id=group_id, user_id=user_id))
        _bump(self.store)

    async def remove_member(self, group_id: str, user_id: str) -> bool:
        async with self.store.write() as conn:
            result = await conn.execute(
                delete(group_members).where(
                    group_members.c.group_id == group_id, group_members.c.user_id == user_id
                )
            )
        _bump(self.store)
        return bool(result.rowcount)

    async def is_member(self, group_id: str, user_id: str) -> bool:
        async with self.store.read() as conn:
            found = await conn.execute(
                select(group_members.c.user_id).where(
                    group_members.c.group_id == group_id, group_members.c.user_id == user_id
                )
            )
            return found.first() is not None

    async def groups_of(self, user_id: str) -> list[Row]:
        query = (
            select(groups)
            .join(group_members, group_members.c.group_id == groups.c.id)
            .where(group_members.c.user_id == user_id)
            .order_by(groups.c.name)
        )
        async with self.store.read() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

    async def members_of(self, group_id: str) -> list[Row]:
        query = (
            select(users)
            .join(group_members, group_members.c.user_id == users.c.id)
            .where(group_members.c.group_id == group_id)
            .order_by(users.c.name)
        )
        async with self.store.read() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

    # ---- role implications -----------------------------------------------------------

    async def implications(self) -> list[tuple[str, str]]:
        async with self.store.read() as conn:
            rows = await conn.execute(select(role_implications))
            return [(r.prior_role_id, r.implied_role_id) for r in rows]

    async def add_implication(self, prior_id: str, implied_id: str) -> bool:
        """True when it was added, False when it existed already."""
        async with self.store.write() as conn:
            found = await conn.execute(
                select(role_implications).where(
                    role_implications.c.prior_role_id == prior_id,
                    role_implications.c.implied_role_id == implied_id,
                )
            )
            if found.first() is not None:
                return False
            await conn.execute(
                insert(role_implications).values(prior_role_id=prior_id, implied_role_id=implied_id)
            )
        _bump(self.store)
        return True

    async def remove_implication(self, prior_id: str, implied_id: str) -> bool:
        async with self.store.write() as conn:
            result = await conn.execute(
                delete(role_implications).where(
                    role_implications.c.prior_role_id == prior_id,
                    role_implications.c.implied_role_id == implied_id,
                )
            )
        _bump(self.store)
        return bool(result.rowcount)

    # ---- role assignments ------------------------------------------------------------

    async def grant(
        self,
        *,
        actor_type: str,
        actor_id: str,
        target_type: str,
        target_id: str,
        role_id: str,
        origin: str | None = None,
    ) -> None:
        key = {
            "actor_type": actor_type,
            "actor_id": actor_id,
            "target_type": target_type,
            "target_id": target_id,
            "role_id": role_id,
        }
        async with self.store.write() as conn:
            found = await conn.execute(
                select(assignments).where(*(assignments.c[k] == v for k, v in key.items()))
            )
            if found.first() is None:
                await conn.execute(insert(assignments).values(**key, origin=origin))
        _bump(self.store)

    async def get_assignment(
        self, *, actor_type: str, actor_id: str, target_type: str, target_id: str, role_id: str
    ) -> Row | None:
        async with self.store.read() as conn:
            found = await conn.execute(
                select(assignments).where(
                    assignments.c.actor_type == actor_type,
                    assignments.c.actor_id == actor_id,
                    assignments.c.target_type == target_type,
                    assignments.c.target_id == target_id,
                    assignments.c.role_id == role_id,
                )
            )
            row = found.first()
            return dict(row._mapping) if row is not None else None

    async def revoke(
        self, *, actor_type: str, actor_id: str, target_type: str, target_id: str, role_id: str
    ) -> bool:
        async with self.store.write() as conn:
            result = await conn.execute(
                delete(assignments).where(
                    assignments.c.actor_type == actor_type,
                    assignments.c.actor_id == actor_id,
                    assignments.c.target_type == target_type,
                    assignments.c.target_id == target_id,
                    assignments.c.role_id == role_id,
                )
            )
        _bump(self.store)
        return bool(result.rowcount)

    async def list_assignments(
        self,
        *,
        actors: Sequence[tuple[str, str]] | None = None,
        target_type: str | None = None,
        target_id: str | None = None,
        role_ids: Iterable[str] | None = None,
    ) -> list[Row]:
        query = select(assignments)
        if actors is not None:
            if not actors:
                return []
            query = query.where(
                or_(
                    *(
                        and_(assignments.c.actor_type == t, assignments.c.actor_id == i)
                        for t, i in actors
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
            return [dict(r._mapping) for r in await conn.execute(query)]


async def _delete_actor(conn: AsyncConnection, actor_type: str, actor_id: str) -> None:
    await conn.execute(
        delete(assignments).where(
            assignments.c.actor_type == actor_type, assignments.c.actor_id == actor_id
        )
    )
    column = group_members.c.user_id if actor_type == "user" else group_members.c.group_id
    await conn.execute(delete(group_members).where(column == actor_id))


def _key(table: Table) -> str:
    return "id" if "id" in table.c else next(iter(table.c.keys()))


def _duplicate_message(what: str, values: Mapping[str, Any]) -> str:
    """Keystone's wording for a name (or id) taken."""
    name = values.get("name")
    if name is None:
        detail = f"Duplicate entry found with ID {values.get('id')}"
    elif values.get("domain_id"):
        detail = f"Duplicate entry found with name {name} at domain ID {values['domain_id']}"
    else:
        detail = f"Duplicate entry found with name {name}"
    return f"Conflict occurred attempting to store {what} - {detail}."


async def ensure_shadow(store: Store, *, issuer: str, user: Mapping[str, Any]) -> bool:
    """Create, idempotently, the record of a user of another fleet site (seed 001:
    federation with idempotent shadow creation), with the token's own (predictable) id
    and ``origin`` = the issuing site, so it is locked against local edits.

    Bookkeeping only: no password, no roles. Only a user whose domain exists here is
    recorded, and never over a user holding that id or that name: whether it was created.
    """
    user_id = str(user["id"])
    name = str(user["name"])
    domain_id = str(user["domain"]["id"])
    async with store.write() as conn:
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
        await conn.execute(
            insert(users).values(
                id=user_id,
                name=name,
                domain_id=domain_id,
                enabled=True,
                password_hash=None,
                extra={"federated_from": issuer},
                origin=issuer,
            )
        )
    _bump(store)
    return True
