"""``ServerRepository``: servers, their state transitions, placement and usage.

Capacity accounting is not a counter that could drift: the usage of a host is the sum of
the resources of the live servers placed on it, and placing a server (``claim_host``)
reads that sum and writes the choice in one write transaction (serialised on PostgreSQL
by an advisory lock), so two boots never both take the last slot of a host. A
task-state change is a compare-and-set (``transition``), so two operations never both
start on one server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update

from edgefed.core.errors import NotFound
from edgefed.store.compute.records import (
    HostUsage,
    InstanceActionRecord,
    ServerRecord,
    to_record,
)
from edgefed.store.compute.tables import LIVE, instance_actions, servers
from edgefed.store.engine import Store
from edgefed.store.schema import utcnow

# The advisory lock that serialises placements on PostgreSQL (an arbitrary constant key).
PLACEMENT_LOCK = 0x65646766_0001


class ServerRepository:
    def __init__(self, store: Store):
        self.store = store

    async def create(
        self, *, values: Mapping[str, Any], replace_deleted: bool = False
    ) -> ServerRecord:
        """A new server; ``replace_deleted``: in place of the deleted row of the same id
        (a server relocated back to a site it left, whose row stayed for the redirect)."""
        now = utcnow()
        row = {"created_at": now, "updated_at": now, "deleted": False, **values}
        async with self.store.write() as conn:
            if replace_deleted:
                await conn.execute(
                    delete(servers).where(servers.c.id == row["id"], servers.c.deleted.is_(True))
                )
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
        return None if row is None else to_record(ServerRecord, row)

    async def list_all(
        self, *, project_id: str | None, include_deleted: bool = False
    ) -> list[ServerRecord]:
        query = select(servers).order_by(servers.c.created_at.desc(), servers.c.id)
        if project_id is not None:
            query = query.where(servers.c.project_id == project_id)
        if not include_deleted:
            query = query.where(LIVE)
        async with self.store.read() as conn:
            return [to_record(ServerRecord, r) for r in await conn.execute(query)]

    async def count_by_vm_state(self) -> dict[str, int]:
        """Live servers per ``vm_state``: counted by the database, no row read."""
        query = select(servers.c.vm_state, func.count()).where(LIVE).group_by(servers.c.vm_state)
        async with self.store.read() as conn:
            return {str(r[0]): int(r[1]) for r in await conn.execute(query)}

    async def in_transition(self) -> list[ServerRecord]:
        """Live servers with an operation under way (or unfinished at the last stop)."""
        query = select(servers).where(and_(LIVE, servers.c.task_state.is_not(None)))
        async with self.store.read() as conn:
            return [to_record(ServerRecord, r) for r in await conn.execute(query)]

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
        """Pick a host with ``choose(current usages)`` and record it, in one transaction.

        SQLite has one writer, so the transaction alone keeps racing placements apart. On
        PostgreSQL (read committed) two transactions would both read the same usage and
        both take the last slot: each placement first takes a transaction-scoped advisory
        lock, released at commit.
        """
        async with self.store.write() as conn:
            if not self.store.is_sqlite:
                await conn.execute(select(func.pg_advisory_xact_lock(PLACEMENT_LOCK)))
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

    async def note_last_action(self, server_id: str, message: str) -> None:
        """Say how the server's latest action ended (Nova's action message, "Error")."""
        async with self.store.write() as conn:
            last = (
                await conn.execute(
                    select(func.max(instance_actions.c.id)).where(
                        instance_actions.c.server_id == server_id
                    )
                )
            ).scalar_one()
            if last is not None:
                await conn.execute(
                    update(instance_actions)
                    .where(instance_actions.c.id == last)
                    .values(message=message, updated_at=utcnow())
                )

    async def actions(self, server_id: str) -> list[InstanceActionRecord]:
        async with self.store.read() as conn:
            rows = await conn.execute(
                select(instance_actions)
                .where(instance_actions.c.server_id == server_id)
                .order_by(instance_actions.c.id.desc())
            )
            return [to_record(InstanceActionRecord, r) for r in rows]


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
