"""Serialising the network store's read-then-write transactions on PostgreSQL.

SQLite has one writer, so a transaction that reads (the free addresses, a project's
count against its quota, a group's rules against a duplicate) and then writes is
alone anyway. PostgreSQL, read committed, lets two such transactions read the same
state; an advisory lock held to the end of the transaction makes them take turns.
"""

from __future__ import annotations

from sqlalchemy import func, select

from edgefed.store.engine import AsyncConnection, Store

# Arbitrary constant keys, one per kind of decision.
ALLOCATION_LOCK = 0x65646766_0101  # address allocation
DEFAULTS_LOCK = 0x65646766_0102  # the defaults made on first use
SECURITY_LOCK = 0x65646766_0103  # groups and rules: quotas, duplicates
QUOTA_LOCK = 0x65646766_0104  # networks and subnets: counts against their quotas


async def serialise(store: Store, conn: AsyncConnection, key: int) -> None:
    """Hold ``key`` until this write transaction ends (PostgreSQL only)."""
    if not store.is_sqlite:
        await conn.execute(select(func.pg_advisory_xact_lock(key)))
