"""Mapping rules: what users of another fleet site may do at this one.

A token from another site proves who its user is, never what they may do here
(docs/fleet-trust.md). Besides the role assignments this site holds, its operator can
say "users of domain D (or the user U) from site S get role R on this target" —
Keystone federation's mapping idea, kept to what a fleet needs. Rules set in the site's
config file carry ``source = "config"`` and are replaced at each start; rules made
through the API carry ``source = "api"``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Column, Float, String, Table, delete, insert, select

from edgefed.store.engine import Store
from edgefed.store.identity import mark_identity_changed
from edgefed.store.schema import metadata

mapping_rules = Table(
    "identity_mappings",
    metadata,
    Column("id", String(64), primary_key=True),
    # The issuing site of the token, or "*" for every fleet site.
    Column("site", String(64), nullable=False),
    # The user's domain at its home site (name or id), or "*".
    Column("user_domain", String(64), nullable=False),
    # One user by name, or "*" for every user of that domain.
    Column("user_name", String(255), nullable=False),
    Column("role_id", String(64), nullable=False),
    Column("target_type", String(16), nullable=False),  # project | domain | system
    Column("target_id", String(64), nullable=False),
    Column("source", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
)


@dataclass(frozen=True, slots=True)
class MappingRule:
    id: str
    site: str
    user_domain: str
    user_name: str
    role_id: str
    target_type: str
    target_id: str
    source: str = "api"
    created_at: float = 0.0


class MappingRepository:
    def __init__(self, store: Store):
        self.store = store

    async def all(self) -> list[MappingRule]:
        async with self.store.read() as conn:
            rows = await conn.execute(select(mapping_rules).order_by(mapping_rules.c.created_at))
            return [MappingRule(**row._mapping) for row in rows]

    async def add(self, rule: MappingRule) -> None:
        async with self.store.write() as conn:
            await conn.execute(insert(mapping_rules).values(**_values(rule)))
        mark_identity_changed(self.store)

    async def delete(self, rule_id: str) -> bool:
        async with self.store.write() as conn:
            result = await conn.execute(delete(mapping_rules).where(mapping_rules.c.id == rule_id))
        mark_identity_changed(self.store)
        return bool(result.rowcount)

    async def replace_source(self, source: str, rules: list[MappingRule]) -> None:
        """Make the rules of ``source`` exactly ``rules`` (one transaction)."""
        async with self.store.write() as conn:
            await conn.execute(delete(mapping_rules).where(mapping_rules.c.source == source))
            if rules:
                await conn.execute(insert(mapping_rules), [_values(r) for r in rules])
        mark_identity_changed(self.store)


def _values(rule: MappingRule) -> dict[str, object]:
    return {
        "id": rule.id,
        "site": rule.site,
        "user_domain": rule.user_domain,
        "user_name": rule.user_name,
        "role_id": rule.role_id,
        "target_type": rule.target_type,
        "target_id": rule.target_id,
        "source": rule.source,
        "created_at": rule.created_at,
    }
