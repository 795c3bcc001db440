"""Tables and repository of the hosts inventory (StarlingX sysinv's ``i_host``, kept small).

A host row carries what the operator declared (hostname, personality, management IP,
BMC, labels), its states (administrative locked/unlocked, availability as reported by
its agent) and what its agent reported (hardware). Enrollment tokens are one-time
secrets an admin hands to a host agent; only their SHA-256 is stored, and so is the
per-host credential the agent receives in exchange.

Uniqueness (hostname, management IP) is enforced by the database as well as checked
by the service, so two concurrent adds can never hand out one address twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Float, String, Table, bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError

from edgefed.core.errors import Conflict
from edgefed.store.engine import Store
from edgefed.store.records import Clock, RecordMapper, RecordRepository
from edgefed.store.schema import JsonDoc, UtcDateTime, metadata, utcnow

hosts = Table(
    "inventory_hosts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("hostname", String(255), nullable=False, unique=True),
    Column("personality", String(16), nullable=True),
    Column("mgmt_ip", String(64), nullable=True, unique=True),
    Column("administrative", String(16), nullable=False),
    Column("availability", String(16), nullable=False),
    Column("bm_type", String(32), nullable=True),
    Column("bm_ip", String(64), nullable=True),
    Column("bm_username", String(255), nullable=True),
    Column("target_load", String(64), nullable=True),
    Column("labels", JsonDoc, nullable=False),
    Column("hardware", JsonDoc, nullable=False),
    Column("cpu_allocation_ratio", Float, nullable=False),
    Column("ram_allocation_ratio", Float, nullable=False),
    Column("disk_allocation_ratio", Float, nullable=False),
    Column("credential_hash", String(64), nullable=True),
    Column("last_heartbeat_at", Float, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

enrollment_tokens = Table(
    "inventory_enrollment_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("hostname", String(255), nullable=True),
    Column("personality", String(16), nullable=True),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
    Column("used_by_host_id", String(36), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
)


@dataclass(frozen=True, slots=True)
class HostRecord:
    id: str
    hostname: str
    personality: str | None
    mgmt_ip: str | None
    administrative: str
    availability: str
    bm_type: str | None
    bm_ip: str | None
    bm_username: str | None
    target_load: str | None
    labels: dict[str, str]
    hardware: dict[str, Any]
    cpu_allocation_ratio: float
    ram_allocation_ratio: float
    disk_allocation_ratio: float
    credential_hash: str | None
    last_heartbeat_at: float | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def locked(self) -> bool:
        return self.administrative == "locked"


@dataclass(frozen=True, slots=True)
class EnrollmentTokenRecord:
    id: str
    token_hash: str
    hostname: str | None
    personality: str | None
    expires_at: float
    used_at: float | None
    used_by_host_id: str | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class NewEnrollmentToken:
    id: str
    token_hash: str
    hostname: str | None
    personality: str | None
    expires_at: float


@dataclass(frozen=True, slots=True)
class NewHost:
    id: str
    hostname: str
    personality: str | None
    mgmt_ip: str | None
    administrative: str = "locked"
    availability: str = "unknown"
    bm_type: str | None = None
    bm_ip: str | None = None
    bm_username: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    hardware: Mapping[str, Any] = field(default_factory=dict)
    cpu_allocation_ratio: float = 16.0
    ram_allocation_ratio: float = 1.5
    disk_allocation_ratio: float = 1.0
    credential_hash: str | None = None
    last_heartbeat_at: float | None = None
    target_load: str | None = None


class _NotClaimed(Exception):
    """Rolls back a claim whose host already has an agent."""


class MgmtIpTaken(Conflict):
    """The management address went to another host (a concurrent add took it first)."""


def _conflict(exc: IntegrityError, values: Mapping[str, Any]) -> Conflict:
    text = str(exc.orig).lower()
    if "mgmt_ip" in text:
        return MgmtIpTaken("The management IP address is already assigned to another host.")
    if "hostname" in text:
        return Conflict("A host with this hostname already exists.")
    return Conflict("The host conflicts with an existing one.")


_HOST = select(hosts).where(
    or_(
        hosts.c.id == bindparam("id"),
        hosts.c.hostname == bindparam("id"),
        hosts.c.hostname == bindparam("lowered"),
    )
)
_BY_HOSTNAME = select(hosts).where(hosts.c.hostname == bindparam("hostname"))
_TOKEN_BY_HASH = select(enrollment_tokens).where(
    enrollment_tokens.c.token_hash == bindparam("token_hash")
)


def _unused_token(token_id: str) -> Any:
    return (enrollment_tokens.c.id == token_id) & (enrollment_tokens.c.used_at.is_(None))


class Hosts(RecordRepository[HostRecord, NewHost]):
    """The hosts, sorted by hostname; ``get`` finds one by id or hostname."""

    table = hosts
    mapper = RecordMapper(HostRecord)
    order = ("hostname",)

    def __init__(self, store: Store, *, now: Clock = utcnow):
        super().__init__(store, now=now, conflict=_conflict)

    async def get(self, *, id: str) -> HostRecord | None:
        """By id or hostname (hostnames are lower-case: ``Edge-1`` finds ``edge-1``)."""
        async with self.store.read() as conn:
            row = (await conn.execute(_HOST, {"id": id, "lowered": id.lower()})).first()
        return self.mapper.one(row) if row else None

    async def by_hostname(self, hostname: str) -> HostRecord | None:
        """The host with this hostname (never one whose *id* happens to look like it)."""
        async with self.store.read() as conn:
            row = (await conn.execute(_BY_HOSTNAME, {"hostname": hostname})).first()
        return self.mapper.one(row) if row else None

    async def used_mgmt_ips(self) -> set[str]:
        async with self.store.read() as conn:
            rows = await conn.execute(select(hosts.c.mgmt_ip).where(hosts.c.mgmt_ip.is_not(None)))
            return {r.mgmt_ip for r in rows}

    async def mark_silent_down(self, *, heard_before: float) -> list[HostRecord]:
        """Hosts reported available whose last heartbeat is older than ``heard_before``,
        now marked ``down``; returns them."""
        async with self.store.write() as conn:
            rows = await conn.execute(
                select(hosts).where(
                    (hosts.c.availability == "available")
                    & (hosts.c.last_heartbeat_at < heard_before)
                )
            )
            silent = self.mapper.all(rows)
            if silent:
                await conn.execute(
                    update(hosts)
                    .where(hosts.c.id.in_([h.id for h in silent]))
                    .values(availability="down", updated_at=self.now())
                )
        return silent

    async def claim_agent(
        self,
        *,
        token_id: str,
        host_id: str,
        credential_hash: str,
        used_at: float,
        changes: Mapping[str, Any],
    ) -> HostRecord | None:
        """In one transaction: use the token and give the host its agent credential, but
        only if the token is unused and the host has no agent yet; None otherwise (and
        nothing changed), so two enrollments can never both take one host."""
        try:
            async with self.store.write() as conn:
                used = await conn.execute(
                    update(enrollment_tokens)
                    .where(_unused_token(token_id))
                    .values(used_at=used_at, used_by_host_id=host_id)
                )
                if used.rowcount != 1:
                    return None
                claimed = await conn.execute(
                    update(hosts)
                    .where((hosts.c.id == host_id) & (hosts.c.credential_hash.is_(None)))
                    .values(credential_hash=credential_hash, updated_at=self.now(), **changes)
                )
                if claimed.rowcount != 1:
                    raise _NotClaimed
        except _NotClaimed:
            return None
        return await self.get(id=host_id)


class EnrollmentTokens(RecordRepository[EnrollmentTokenRecord, NewEnrollmentToken]):
    """One-time secrets for host agents; only their SHA-256 is kept."""

    table = enrollment_tokens
    mapper = RecordMapper(EnrollmentTokenRecord)

    async def by_hash(self, token_hash: str) -> EnrollmentTokenRecord | None:
        async with self.store.read() as conn:
            row = (await conn.execute(_TOKEN_BY_HASH, {"token_hash": token_hash})).first()
            return self.mapper.one(row) if row else None

    async def consume(self, token_id: str, *, host_id: str, used_at: float) -> bool:
        """Mark the token used; False when someone else used it first (one-time)."""
        async with self.store.write() as conn:
            result = await conn.execute(
                update(enrollment_tokens)
                .where(_unused_token(token_id))
                .values(used_at=used_at, used_by_host_id=host_id)
            )
            return bool(result.rowcount == 1)


class InventoryRepository:
    """What other rooms read of the inventory (the scheduler's and the fleet's hosts)."""

    def __init__(self, store: Store):
        self.hosts = Hosts(store)

    async def list_hosts(self) -> list[HostRecord]:
        return list(await self.hosts.list())
