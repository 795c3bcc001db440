"""A site's alarms: raised by the site itself (peer unreachable, capacity, host down,
sync failing) or by an operator, cleared by the condition going away or by hand.

At most one alarm is *active* per (type, entity): raising it again while it is active
refreshes its reason and severity instead of adding a row, so a health loop that runs
every second can raise idempotently. Cleared alarms stay as history (with who cleared
them and when). Times are epoch seconds from the site's clock.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, Float, Index, String, Table, Text, and_, func, select, update
from sqlalchemy.engine import Row

from edgefed.core.ids import new_uuid
from edgefed.store.engine import Store
from edgefed.store.schema import metadata

ACTIVE = "active"
CLEARED = "cleared"


class Severity(StrEnum):
    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"


SEVERITY_ORDER = {s: i for i, s in enumerate(Severity)}
# Held while an alarm is looked for and raised: on PostgreSQL two raises at once would
# otherwise both find none active and both insert one (an arbitrary constant key).
_RAISE_LOCK = 0x65646766_0301

alarms = Table(
    "fleet_alarms",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("type", String(64), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("entity", String(255), nullable=False),
    Column("reason", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("origin", String(16), nullable=False),  # "site" (automatic) or "operator"
    Column("raised_by", String(255), nullable=True),
    Column("raised_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("cleared_at", Float, nullable=True),
    Column("cleared_by", String(255), nullable=True),
    Index("ix_fleet_alarms_state_type_entity", "state", "type", "entity"),
)


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    id: str
    type: str
    severity: str
    entity: str
    reason: str
    state: str
    origin: str
    raised_by: str | None
    raised_at: float
    updated_at: float
    cleared_at: float | None
    cleared_by: str | None

    @property
    def active(self) -> bool:
        return self.state == ACTIVE


@dataclass(frozen=True, slots=True)
class AlarmFilter:
    state: str | None = ACTIVE
    severity: str | None = None
    type: str | None = None
    entity: str | None = None
    limit: int = 1000


def _record(row: Row[Any]) -> AlarmRecord:
    names = {f.name for f in fields(AlarmRecord)}
    return AlarmRecord(**{k: v for k, v in row._mapping.items() if k in names})


class AlarmRepository:
    """All SQL of the alarms."""

    def __init__(self, store: Store):
        self.store = store

    async def raise_alarm(
        self,
        *,
        type: str,
        severity: Severity,
        entity: str,
        reason: str,
        now: float,
        origin: str = "site",
        raised_by: str | None = None,
    ) -> tuple[AlarmRecord, bool]:
        """(the active alarm for (type, entity), whether it was newly raised)."""
        key = and_(alarms.c.state == ACTIVE, alarms.c.type == type, alarms.c.entity == entity)
        async with self.store.write() as conn:
            if not self.store.is_sqlite:  # PostgreSQL: racing raises of one alarm take turns
                await conn.execute(select(func.pg_advisory_xact_lock(_RAISE_LOCK)))
            row = (await conn.execute(select(alarms).where(key))).first()
            if row is not None:
                current = _record(row)
                if current.reason == reason and current.severity == severity.value:
                    return current, False
                await conn.execute(
                    update(alarms)
                    .where(alarms.c.id == current.id)
                    .values(reason=reason, severity=severity.value, updated_at=now)
                )
                alarm_id, created = current.id, False
            else:
                alarm_id, created = new_uuid(), True
                await conn.execute(
                    alarms.insert().values(
                        id=alarm_id,
                        type=type,
                        severity=severity.value,
                        entity=entity,
                        reason=reason,
                        state=ACTIVE,
                        origin=origin,
                        raised_by=raised_by,
                        raised_at=now,
                        updated_at=now,
                    )
                )
            row = (await conn.execute(select(alarms).where(alarms.c.id == alarm_id))).one()
        return _record(row), created

    async def clear(self, alarm_id: str, *, now: float, cleared_by: str | None) -> AlarmRecord:
        async with self.store.write() as conn:
            await conn.execute(
                update(alarms)
                .where(and_(alarms.c.id == alarm_id, alarms.c.state == ACTIVE))
                .values(state=CLEARED, cleared_at=now, cleared_by=cleared_by, updated_at=now)
            )
            row = (await conn.execute(select(alarms).where(alarms.c.id == alarm_id))).one()
        return _record(row)

    async def clear_condition(self, *, type: str, entity: str, now: float) -> bool:
        """Clear the active alarm for (type, entity), if any (the condition went away)."""
        async with self.store.write() as conn:
            result = await conn.execute(
                update(alarms)
                .where(
                    and_(alarms.c.state == ACTIVE, alarms.c.type == type, alarms.c.entity == entity)
                )
                .values(state=CLEARED, cleared_at=now, cleared_by="site", updated_at=now)
            )
        return bool(result.rowcount)

    async def get(self, alarm_id: str) -> AlarmRecord | None:
        async with self.store.read() as conn:
            row = (await conn.execute(select(alarms).where(alarms.c.id == alarm_id))).first()
        return None if row is None else _record(row)

    async def find(self, flt: AlarmFilter) -> list[AlarmRecord]:
        query = select(alarms).order_by(alarms.c.raised_at.desc(), alarms.c.id).limit(flt.limit)
        for column, value in (
            (alarms.c.state, flt.state),
            (alarms.c.severity, flt.severity),
            (alarms.c.type, flt.type),
            (alarms.c.entity, flt.entity),
        ):
            if value is not None:
                query = query.where(column == value)
        async with self.store.read() as conn:
            return [_record(r) for r in await conn.execute(query)]

    async def active_of_type(self, type: str) -> list[AlarmRecord]:
        return await self.find(AlarmFilter(type=type))

    async def active_counts(self) -> dict[str, int]:
        """Active alarms by severity (every severity present, zero when none)."""
        query = (
            select(alarms.c.severity, func.count())
            .where(alarms.c.state == ACTIVE)
            .group_by(alarms.c.severity)
        )
        counts = {s.value: 0 for s in Severity}
        async with self.store.read() as conn:
            for severity, count in await conn.execute(query):
                counts[str(severity)] = int(count)
        return counts
