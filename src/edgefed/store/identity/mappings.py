"""Mapping rules as records (``store.mappings`` holds their table): what users of
another fleet site may do here. Every change bumps the identity generation, so the
foreign-token authority stops using its cached rules at once.

Not imported by the package's ``__init__``: ``store.mappings`` imports the package.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, insert

from edgefed.store.engine import Store
from edgefed.store.identity.generation import mark_identity_changed
from edgefed.store.mappings import MappingRule, mapping_rules
from edgefed.store.records import RecordMapper, RecordRepository, column_values


class MappingRules(RecordRepository[MappingRule, MappingRule]):
    table = mapping_rules
    mapper = RecordMapper(MappingRule)
    order = ("created_at", "id")

    def __init__(self, store: Store):
        super().__init__(store, on_write=lambda: mark_identity_changed(store))

    async def replace_source(self, source: str, rules: Sequence[MappingRule]) -> None:
        """Make the rules of ``source`` exactly ``rules`` (one transaction)."""
        try:
            async with self.store.write() as conn:
                await conn.execute(delete(mapping_rules).where(mapping_rules.c.source == source))
                if rules:
                    await conn.execute(insert(mapping_rules), [column_values(r) for r in rules])
        finally:
            self._written()
