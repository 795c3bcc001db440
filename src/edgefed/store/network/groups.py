"""Security groups: a ``default`` group per project, made on first use with Neutron's
default rules; groups made and deleted within the project's quota; never one in use.

A group's rules are rows of their own (``rules.py``), read with the group in the same
transaction. Deleting a group takes its rules and every rule that names it as its
remote group, as Neutron's cascade does; a group a port is in is not deleted.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence

from sqlalchemy import Table, bindparam, delete, func, insert, or_, select

from edgefed.core.errors import Conflict
from edgefed.core.ids import new_uuid
from edgefed.store.engine import AsyncConnection, Store
from edgefed.store.network.locks import DEFAULTS_LOCK, SECURITY_LOCK, serialise
from edgefed.store.network.tables import (
    DEFAULT_GROUP_NAME,
    NewSecurityGroup,
    SecurityGroupRecord,
    SecurityGroupRuleRecord,
    port_security_groups,
    security_group_rules,
    security_groups,
)
from edgefed.store.records import Clock, RecordMapper, RecordRepository, Related, column_values
from edgefed.store.schema import utcnow

RULES = RecordMapper(SecurityGroupRuleRecord)
_RULES_OF = (
    select(security_group_rules)
    .where(security_group_rules.c.security_group_id.in_(bindparam("ids", expanding=True)))
    .order_by(security_group_rules.c.created_at, security_group_rules.c.id)
)
_DEFAULT_OF = select(security_groups.c.id).where(
    security_groups.c.project_id == bindparam("project_id"),
    security_groups.c.name == DEFAULT_GROUP_NAME,
)


def over_quota(resource: str) -> Conflict:
    return Conflict(f"Quota exceeded for resources: ['{resource}'].", kind="OverQuota")


async def count_of(conn: AsyncConnection, table: Table, project_id: str) -> int:
    """How many rows of ``table`` the project has."""
    found = await conn.execute(
        select(func.count()).select_from(table).where(table.c.project_id == project_id)
    )
    return int(found.scalar_one())


def initial_rules(
    group_id: str, project_id: str, *, default: bool, now: object
) -> list[dict[str, object]]:
    """Neutron's: any egress (IPv4 and IPv6); a default group also lets its own members
    in."""
    rules: list[tuple[str, str, str | None]] = [("egress", "IPv4", None), ("egress", "IPv6", None)]
    if default:
        rules += [("ingress", "IPv4", group_id), ("ingress", "IPv6", group_id)]
    return [
        {
            "id": new_uuid(),
            "security_group_id": group_id,
            "project_id": project_id,
            "direction": direction,
            "ethertype": ethertype,
            "protocol": None,
            "port_range_min": None,
            "port_range_max": None,
            "remote_ip_prefix": None,
            "remote_group_id": remote,
            "description": "",
            "created_at": now,
            "updated_at": now,
        }
        for direction, ethertype, remote in rules
    ]


class SecurityGroups(RecordRepository[SecurityGroupRecord, NewSecurityGroup]):
    """Read through a project (``ensure_for``), the project's default group exists first."""

    table = security_groups
    mapper = RecordMapper(SecurityGroupRecord)
    related = (Related("rules", _RULES_OF, key="security_group_id", item=RULES.one),)

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
            found = (await conn.execute(_DEFAULT_OF, {"project_id": project_id})).scalar()
        if found is None:
            async with self.store.write() as conn:
                await serialise(self.store, conn, DEFAULTS_LOCK)
                found = (await conn.execute(_DEFAULT_OF, {"project_id": project_id})).scalar()
                if found is None:
                    new = NewSecurityGroup(
                        name=DEFAULT_GROUP_NAME,
                        project_id=project_id,
                        description="Default security group",
                    )
                    found = await self._insert(conn, new, default=True)
        group = await super().get(id=str(found))
        assert group is not None
        return group

    async def _insert(self, conn: AsyncConnection, new: NewSecurityGroup, *, default: bool) -> str:
        values = self.stamped(column_values(new))
        await conn.execute(insert(security_groups).values(**values))
        rules = initial_rules(
            values["id"], new.project_id, default=default, now=values["created_at"]
        )
        await conn.execute(insert(security_group_rules), rules)
        return str(values["id"])

    async def add(
        self, *, new: NewSecurityGroup, limit: int, rule_limit: int
    ) -> SecurityGroupRecord:
        """A group with Neutron's egress rules; 409 ``OverQuota`` when the project has
        ``limit`` groups already, or too little room for the two rules (-1: no limit)."""
        async with self.store.write() as conn:
            await serialise(self.store, conn, SECURITY_LOCK)
            if 0 <= limit <= await count_of(conn, security_groups, new.project_id):
                raise over_quota("security_group")
            rules = await count_of(conn, security_group_rules, new.project_id)
            if 0 <= rule_limit < rules + 2:
                raise over_quota("security_group_rule")
            made = await self._insert(conn, new, default=False)
        group = await super().get(id=made)
        assert group is not None
        return group

    async def delete(self, *, id: str) -> bool:
        """Delete the group, its rules and the rules naming it as remote; 409 while a
        port is in it."""
        async with self.store.write() as conn:
            await serialise(self.store, conn, SECURITY_LOCK)
            in_use = await conn.execute(
                select(port_security_groups.c.port_id)
                .where(port_security_groups.c.security_group_id == id)
                .limit(1)
            )
            if in_use.first() is not None:
                raise Conflict(f"Security Group {id} in use.", kind="SecurityGroupInUse")
            rules = security_group_rules.c
            await conn.execute(
                delete(security_group_rules).where(
                    or_(rules.security_group_id == id, rules.remote_group_id == id)
                )
            )
            result = await conn.execute(delete(security_groups).where(security_groups.c.id == id))
        return bool(result.rowcount)

    async def of_project(
        self, project_id: str, refs: Sequence[str]
    ) -> builtins.list[SecurityGroupRecord]:
        """The project's groups named by id or by name, in ``refs``' order; LookupError
        naming those that are not."""
        groups = await super().list(filters={"project_id": project_id})
        found: builtins.list[SecurityGroupRecord] = []
        missing: builtins.list[str] = []
        for ref in refs:
            match = [g for g in groups if g.id == ref] or [g for g in groups if g.name == ref]
            if len(match) == 1:
                found.append(match[0])
            else:  # none, or a name two groups share
                missing.append(ref)
        if missing:
            raise LookupError(", ".join(missing))
        return found
