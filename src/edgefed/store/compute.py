"""Tables and repositories of the compute service: flavors, servers, keypairs, quotas.

The compute service never sees SQL: it calls the repositories below, which return
frozen records. Capacity accounting is not a counter that could drift: the usage of a
host is the sum of the resources of the live servers placed on it, and placing a
server (``ServerRepository.claim_host``) reads that sum and writes the choice in one
write transaction, so two boots never both take the last slot of a host.

Rows that arrived from a sync source carry its name in ``origin``; the repositories
refuse to change or delete them locally (``Locked``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError

from edgefed.core.errors import Conflict, Locked, NotFound
from edgefed.store.engine import Store
from edgefed.store.schema import JsonDoc, UtcDateTime, metadata, utcnow

flavors = Table(
    "compute_flavors",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("vcpus", Integer, nullable=False),
    Column("ram", Integer, nullable=False),
    Column("disk", Integer, nullable=False),
    Column("ephemeral", Integer, nullable=False, default=0),
    Column("swap", Integer, nullable=False, default=0),
    Column("rxtx_factor", Float, nullable=False, default=1.0),
    Column("is_public", Boolean, nullable=False, default=True),
    Column("description", Text, nullable=True),
    Column("extra_specs", JsonDoc, nullable=False, default=dict),
    Column("origin", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)

flavor_access = Table(
    "compute_flavor_access",
    metadata,
    Column("flavor_id", String(255), primary_key=True),
    Column("project_id", String(64), primary_key=True),
)

keypairs = Table(
    "compute_keypairs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("type", String(16), nullable=False),
    Column("public_key", Text, nullable=False),
    Column("fingerprint", String(128), nullable=False),
    Column("origin", String(64), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("user_id", "name", name="uq_compute_keypairs_user_name"),
)

# kind = "project" (owner = project id) or "class" (owner = quota class name).
quotas = Table(
    "compute_quotas",
    metadata,
    Column("kind", String(16), primary_key=True),
    Column("owner", String(64), primary_key=True),
    Column("resource", String(64), primary_key=True),
    Column("hard_limit", Integer, nullable=False),
    Column("origin", String(64), nullable=True),
)

servers = Table(
    "compute_servers",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("project_id", String(64), nullable=False, index=True),
    Column("user_id", String(64), nullable=False),
    Column("image_id", String(64), nullable=True),
    Column("flavor_id", String(255), nullable=False),
    Column("flavor", JsonDoc, nullable=False),
    Column("vcpus", Integer, nullable=False),
    Column("ram", Integer, nullable=False),
    Column("disk", Integer, nullable=False),
    Column("host", String(255), nullable=True, index=True),
    Column("availability_zone", String(255), nullable=True),
    Column("vm_state", String(32), nullable=False),
    Column("task_state", String(32), nullable=True),
    Column("power_state", Integer, nullable=False, default=0),
    Column("key_name", String(255), nullable=True),
    Column("key_data", Text, nullable=True),
    Column("metadata", JsonDoc, nullable=False, default=dict),
    Column("user_data", Text, nullable=True),
    Column("description", Text, nullable=True),
    Column("locked", Boolean, nullable=False, default=False),
    Column("locked_reason", Text, nullable=True),
    Column("tags", JsonDoc, nullable=False, default=list),
    Column("security_groups", JsonDoc, nullable=False, default=list),
    Column("requested_networks", JsonDoc, nullable=True),
    Column("config_drive", String(16), nullable=False, default=""),
    Column("fault", JsonDoc, nullable=True),
    Column("reservation_id", String(64), nullable=False),
    Column("launch_index", Integer, nullable=False, default=0),
    Column("hostname", String(255), nullable=False),
    Column("launched_at", UtcDateTime, nullable=True),
    Column("terminated_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("deleted", Boolean, nullable=False, default=False, index=True),
)

instance_actions = Table(
    "compute_instance_actions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("server_id", String(36), nullable=False, index=True),
    Column("action", String(64), nullable=False),
    Column("request_id", String(64), nullable=False),
    Column("user_id", String(64), nullable=False),
    Column("project_id", String(64), nullable=False),
    Column("message", Text, nullable=True),
    Column("start_time", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=True),
)


@dataclass(frozen=True, slots=True)
class FlavorRecord:
    id: str
    name: str
    vcpus: int
    ram: int
    disk: int
    ephemeral: int
    swap: int
    rxtx_factor: float
    is_public: bool
    description: str | None
    extra_specs: dict[str, str]
    origin: str | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class KeypairRecord:
    id: int
    user_id: str
    name: str
    type: str
    public_key: str
    fingerprint: str
    origin: str | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ServerRecord:
    id: str
    name: str
    project_id: str
    user_id: str
    image_id: str | None
    flavor_id: str
    flavor: dict[str, Any]
    vcpus: int
    ram: int
    disk: int
    host: str | None
    availability_zone: str | None
    vm_state: str
    task_state: str | None
    power_state: int
    key_name: str | None
    key_data: str | None
    metadata: dict[str, str]
    user_data: str | None
    description: str | None
    locked: bool
    locked_reason: str | None
    tags: list[str]
    security_groups: list[str]
    requested_networks: Any
    config_drive: str
    fault: dict[str, Any] | None
    reservation_id: str
    launch_index: int
    hostname: str
    launched_at: dt.datetime | None
    terminated_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime
    deleted: bool


@dataclass(frozen=True, slots=True)
class InstanceActionRecord:
    id: int
    server_id: str
    action: str
    request_id: str
    user_id: str
    project_id: str
    message: str | None
    start_time: dt.datetime
    updated_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class HostUsage:
    """What the live servers placed on one host take from it."""

    host: str
    vcpus: int = 0
    ram_mb: int = 0
    disk_gb: int = 0
    servers: int = 0


def _record(cls: Any, row: Row[Any]) -> Any:
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in row._mapping.items() if k in names})


def _locked(kind: str, name: str, origin: str) -> Locked:
    return Locked(
        f"{kind} {name} was synchronised from site {origin} and can only be changed there.",
        source=origin,
    )


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
        return None if row is None else _record(FlavorRecord, row)

    async def list_all(self) -> list[FlavorRecord]:
        async with self.store.read() as conn:
            rows = await conn.execute(select(flavors))
            return [_record(FlavorRecord, r) for r in rows]

    async def delete(self, flavor: FlavorRecord) -> None:
        if flavor.origin:
            raise _locked("Flavor", flavor.id, flavor.origin)
        async with self.store.write() as conn:
            await conn.execute(delete(flavors).where(flavors.c.id == flavor.id))
            await conn.execute(delete(flavor_access).where(flavor_access.c.flavor_id == flavor.id))

    async def update(self, flavor: FlavorRecord, **values: Any) -> FlavorRecord:
        if flavor.origin:
            raise _locked("Flavor", flavor.id, flavor.origin)
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
            raise _locked("Flavor", flavor.id, flavor.origin)
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
            raise _locked("Flavor", flavor.id, flavor.origin)
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
        return None if row is None else _record(KeypairRecord, row)

    async def list_for(self, *, user_id: str) -> list[KeypairRecord]:
        async with self.store.read() as conn:
            rows = await conn.execute(
                select(keypairs).where(keypairs.c.user_id == user_id).order_by(keypairs.c.name)
            )
            return [_record(KeypairRecord, r) for r in rows]

    async def count(self, *, user_id: str) -> int:
        async with self.store.read() as conn:
            result = await conn.execute(
                select(func.count()).select_from(keypairs).where(keypairs.c.user_id == user_id)
            )
            return int(result.scalar_one())

    async def delete(self, keypair: KeypairRecord) -> None:
        if keypair.origin:
            raise _locked("Key pair", keypair.name, keypair.origin)
        async with self.store.write() as conn:
            await conn.execute(delete(keypairs).where(keypairs.c.id == keypair.id))


class QuotaRepository:
    """Hard limits per project and per quota class; a missing row means "the default"."""

    def __init__(self, store: Store):
        self.store = store

    async def limits(self, *, kind: str, owner: str) -> dict[str, int]:
        async with self.store.read() as conn:
            rows = await conn.execute(
                select(quotas.c.resource, quotas.c.hard_limit).where(
                    and_(quotas.c.kind == kind, quotas.c.owner == owner)
                )
            )
            return {r.resource: int(r.hard_limit) for r in rows}

    async def set_limits(self, *, kind: str, owner: str, limits: Mapping[str, int]) -> None:
        async with self.store.write() as conn:
            for resource, limit in limits.items():
                key = and_(
                    quotas.c.kind == kind, quotas.c.owner == owner, quotas.c.resource == resource
                )
                row = (await conn.execute(select(quotas.c.origin).where(key))).first()
                if row is not None and row.origin:
                    raise _locked("Quota", f"{resource} of {owner}", row.origin)
                if row is None:
                    await conn.execute(
                        insert(quotas).values(
                            kind=kind, owner=owner, resource=resource, hard_limit=limit
                        )
                    )
                else:
                    await conn.execute(update(quotas).where(key).values(hard_limit=limit))

    async def reset(self, *, kind: str, owner: str) -> None:
        async with self.store.write() as conn:
            key = and_(quotas.c.kind == kind, quotas.c.owner == owner)
            synced = (await conn.execute(select(quotas.c.origin).where(key))).all()
            origins = [r.origin for r in synced if r.origin]
            if origins:
                raise _locked("Quota set", owner, origins[0])
            await conn.execute(delete(quotas).where(key))


LIVE = servers.c.deleted.is_(False)


class ServerRepository:
    def __init__(self, store: Store):
        self.store = store

    async def create(self, *, values: Mapping[str, Any]) -> ServerRecord:
        now = utcnow()
        row = {"created_at": now, "updated_at": now, "deleted": False, **values}
        async with self.store.write() as conn:
            await conn.execute(insert(servers).values(**row))
        found = await self.get(str(row["id"]))
        assert found is not None
        return found

    async def get(self, server_id: str, *, include_deleted: bool = False) -> ServerRecord | None:
        query = select(servers).where(servers.c.id == server_id)
        if not include_deleted:
            query = query.where(LIVE)
        async with self.store.read() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _record(ServerRecord, row)

    async def list_all(
        self, *, project_id: str | None, include_deleted: bool = False
    ) -> list[ServerRecord]:
        query = select(servers).order_by(servers.c.created_at.desc(), servers.c.id)
        if project_id is not None:
            query = query.where(servers.c.project_id == project_id)
        if not include_deleted:
            query = query.where(LIVE)
        async with self.store.read() as conn:
            return [_record(ServerRecord, r) for r in await conn.execute(query)]

    async def in_transition(self) -> list[ServerRecord]:
        """Live servers with an operation under way (or unfinished at the last stop)."""
        query = select(servers).where(and_(LIVE, servers.c.task_state.is_not(None)))
        async with self.store.read() as conn:
            return [_record(ServerRecord, r) for r in await conn.execute(query)]

    async def update(self, server_id: str, **values: Any) -> ServerRecord:
        values.setdefault("updated_at", utcnow())
        async with self.store.write() as conn:
            await conn.execute(update(servers).where(servers.c.id == server_id).values(**values))
        found = await self.get(server_id, include_deleted=True)
        if found is None:
            raise NotFound(f"Instance {server_id} could not be found.")
        return found

    async def transition(
        self, server_id: str, *, expect_task: Sequence[str | None], **values: Any
    ) -> bool:
        """Update only if the server's task state is one of ``expect_task`` (compare-and-set)."""
        values.setdefault("updated_at", utcnow())
        conditions = [servers.c.task_state.is_(None)] if None in expect_task else []
        named = [t for t in expect_task if t is not None]
        if named:
            conditions.append(servers.c.task_state.in_(named))
        async with self.store.write() as conn:
            result = await conn.execute(
                update(servers)
                .where(and_(servers.c.id == server_id, LIVE, or_(*conditions)))
                .values(**values)
            )
        return bool(result.rowcount)

    async def usage_by_project(self, project_id: str) -> tuple[int, int, int]:
        """(instances, cores, ram) the project's live servers count against its quota."""
        async with self.store.read() as conn:
            row = (
                await conn.execute(
                    select(
                        func.count(),
                        func.coalesce(func.sum(servers.c.vcpus), 0),
                        func.coalesce(func.sum(servers.c.ram), 0),
                    ).where(and_(LIVE, servers.c.project_id == project_id))
                )
            ).one()
        return int(row[0]), int(row[1]), int(row[2])

    async def host_usages(self) -> dict[str, HostUsage]:
        async with self.store.read() as conn:
            return await _host_usages(conn)

    async def claim_host(
        self, server_id: str, *, choose: Callable[[dict[str, HostUsage]], str | None]
    ) -> str | None:
        """Pick a host with ``choose(current usages)`` and record it, in one transaction."""
        async with self.store.write() as conn:
            usages = await _host_usages(conn)
            host = choose(usages)
            if host is not None:
                await conn.execute(
                    update(servers)
                    .where(servers.c.id == server_id)
                    .values(host=host, updated_at=utcnow())
                )
            return host

    async def record_action(
        self, *, server_id: str, action: str, request_id: str, user_id: str, project_id: str
    ) -> None:
        async with self.store.write() as conn:
            await conn.execute(
                insert(instance_actions).values(
                    server_id=server_id,
                    action=action,
                    request_id=request_id,
                    user_id=user_id,
                    project_id=project_id,
                    start_time=utcnow(),
                )
            )

    async def actions(self, server_id: str) -> list[InstanceActionRecord]:
        async with self.store.read() as conn:
            rows = await conn.execute(
                select(instance_actions)
                .where(instance_actions.c.server_id == server_id)
                .order_by(instance_actions.c.id.desc())
            )
            return [_record(InstanceActionRecord, r) for r in rows]


async def _host_usages(conn: Any) -> dict[str, HostUsage]:
    rows = await conn.execute(
        select(
            servers.c.host,
            func.count(),
            func.coalesce(func.sum(servers.c.vcpus), 0),
            func.coalesce(func.sum(servers.c.ram), 0),
            func.coalesce(func.sum(servers.c.disk), 0),
        )
        .where(and_(LIVE, servers.c.host.is_not(None)))
        .group_by(servers.c.host)
    )
    return {
        r[0]: HostUsage(
            host=r[0], servers=int(r[1]), vcpus=int(r[2]), ram_mb=int(r[3]), disk_gb=int(r[4])
        )
        for r in rows
    }
