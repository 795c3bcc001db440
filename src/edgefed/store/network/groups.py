"""Security groups (a ``default`` group per project, made on first use, as Neutron does)
and the network quotas of each project."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, select

from edgefed.core.ids import new_uuid
from edgefed.store.engine import Store
from edgefed.store.network.ports import DEFAULTS_LOCK, serialise
from edgefed.store.network.tables import (
    SecurityGroupRecord,
    network_quotas,
    networks,
    ports,
    security_groups,
    subnets,
)
from edgefed.store.records import Clock, RecordMapper, RecordRepository
from edgefed.store.schema import utcnow

_DEFAULT_OF = select(security_groups).where(
    security_groups.c.project_id == bindparam("project_id"), security_groups.c.name == "default"
)


class SecurityGroups(RecordRepository[SecurityGroupRecord, SecurityGroupRecord]):
    """Read through a project (``ensure_for``), the project's default group exists first."""

    table = security_groups
    mapper = RecordMapper(SecurityGroupRecord)

    def __init__(self, store: Store, *, ensure_for: str | None = None, now: Clock = utcnow):
        super().__init__(store, now=now)
        self.ensure_for = ensure_for

    async def get(self, *, id: str) -> SecurityGroupRecord | None:
        if self.ensure_for is not None:
            await self.ensure_default(self.ensure_for)
        return await super().get(id=id)

    async def list(
        self,
        *,
        filters: Mapping[str, object] | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> Sequence[SecurityGroupRecord]:
        if self.ensure_for is not None:
            await self.ensure_default(self.ensure_for)
        return await super().list(filters=filters, limit=limit, after=after)

    async def ensure_default(self, project_id: str) -> SecurityGroupRecord:
        """The project's ``default`` group, created with Neutron's default rules if missing
        (looked for first without the write lock: it exists but once per project). Made
        in one write transaction, serialised on PostgreSQL: racing first uses make one."""
        async with self.store.read() as conn:
            row = (await conn.execute(_DEFAULT_OF, {"project_id": project_id})).first()
        if row is not None:
            return self.mapper.one(row)
        async with self.store.write() as conn:
            await serialise(self.store, conn, DEFAULTS_LOCK)
            row = (await conn.execute(_DEFAULT_OF, {"project_id": project_id})).first()
            if row is None:
                group_id = new_uuid()
                now = self.now()
                await conn.execute(
                    insert(security_groups).values(
                        id=group_id,
                        project_id=project_id,
                        name="default",
                        description="Default security group",
                        rules=default_rules(group_id, project_id),
                        created_at=now,
                        updated_at=now,
                    )
                )
                row = (await conn.execute(_DEFAULT_OF, {"project_id": project_id})).one()
        return self.mapper.one(row)


def default_rules(group_id: str, project_id: str) -> list[dict[str, Any]]:
    """Neutron's: any egress; ingress from members of the same group."""
    return [
        _rule(group_id, project_id, "egress", "IPv4", None),
        _rule(group_id, project_id, "egress", "IPv6", None),
        _rule(group_id, project_id, "ingress", "IPv4", group_id),
        _rule(group_id, project_id, "ingress", "IPv6", group_id),
    ]


def _rule(
    group_id: str, project_id: str, direction: str, ethertype: str, remote_group: str | None
) -> dict[str, Any]:
    return {
        "id": new_uuid(),
        "security_group_id": group_id,
        "project_id": project_id,
        "tenant_id": project_id,
        "direction": direction,
        "ethertype": ethertype,
        "protocol": None,
        "port_range_min": None,
        "port_range_max": None,
        "remote_ip_prefix": None,
        "remote_group_id": remote_group,
        "description": "",
    }


class NetworkQuotas:
    """A project's limits (only those set; the service knows the defaults) and usage."""

    def __init__(self, store: Store):
        self.store = store

    async def limits(self, project_id: str) -> dict[str, int]:
        async with self.store.read() as conn:
            rows = await conn.execute(
                select(network_quotas).where(network_quotas.c.project_id == project_id)
            )
            return {row.resource: int(row.hard_limit) for row in rows}

    async def set_limits(self, project_id: str, limits: Mapping[str, int]) -> None:
        async with self.store.write() as conn:
            await conn.execute(
                delete(network_quotas).where(
                    and_(
                        network_quotas.c.project_id == project_id,
                        network_quotas.c.resource.in_(list(limits)),
                    )
                )
            )
            for resource, limit in limits.items():
                await conn.execute(
                    insert(network_quotas).values(
                        project_id=project_id, resource=resource, hard_limit=limit
                    )
                )

    async def reset(self, project_id: str) -> None:
        async with self.store.write() as conn:
            await conn.execute(
                delete(network_quotas).where(network_quotas.c.project_id == project_id)
            )

    async def usage(self, project_id: str) -> dict[str, int]:
        """How many networks, subnets, ports and security groups the project has."""
        counts: dict[str, int] = {}
        async with self.store.read() as conn:
            for name, table in (
                ("network", networks),
                ("subnet", subnets),
                ("port", ports),
                ("security_group", security_groups),
            ):
                found = await conn.execute(
                    select(func.count()).select_from(table).where(table.c.project_id == project_id)
                )
                counts[name] = int(found.scalar_one())
        return counts
