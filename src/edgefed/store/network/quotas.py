"""The network quotas of each project: the limits set (the service knows the defaults)
and what the project uses."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import and_, delete, insert, select

from edgefed.store.engine import Store
from edgefed.store.network.groups import count_of
from edgefed.store.network.tables import (
    network_quotas,
    networks,
    ports,
    security_group_rules,
    security_groups,
    subnets,
)


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
        """How many networks, subnets, ports, security groups and rules the project has."""
        counted = (
            ("network", networks),
            ("subnet", subnets),
            ("port", ports),
            ("security_group", security_groups),
            ("security_group_rule", security_group_rules),
        )
        async with self.store.read() as conn:
            return {name: await count_of(conn, table, project_id) for name, table in counted}
