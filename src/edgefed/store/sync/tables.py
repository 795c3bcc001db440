"""The sync engine's tables, and the states their rows go through.

All of them in one place because each repository of this package reads several (the
outbox prunes against the change log, a registration removal empties the outbox, the
receiver writes marks, versions and conflicts in one transaction): the tables are the
shared vocabulary, the repositories next to this module the verbs.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

from edgefed.store.schema import metadata

SeqType = BigInteger().with_variant(Integer, "sqlite")

# Written by database triggers (triggers.py) on every synchronisable table.
changes = Table(
    "sync_changes",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("key", String(512), nullable=False),
    Column("op", String(8), nullable=False),
    Index("ix_sync_changes_kind_key", "kind", "key"),
)

cursors = Table(
    "sync_cursors",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("seq", BigInteger, nullable=False),
)

marks = Table(
    "sync_marks",
    metadata,
    Column("kind", String(32), nullable=False),
    Column("key", String(512), nullable=False),
    Column("targets", Text, nullable=False),
    Column("origin", String(64), nullable=True),
    Column("created_at", Float, nullable=False),
    PrimaryKeyConstraint("kind", "key", name="pk_sync_marks"),
)

# A receiver's registration at this source. ``pending``: the receiver asked and this
# site's operator has not accepted it yet (nothing is pushed or pulled); ``approved``:
# accepted ahead of the request; ``accepted``: this site serves it.
receivers = Table(
    "sync_receivers",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("state", String(12), nullable=False),
    Column("registered_at", Float, nullable=False),
    Column("requested_at", Float, nullable=True),
    Column("accepted_at", Float, nullable=True),
)

sources = Table(
    "sync_sources",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("registered_at", Float, nullable=False),
)

outbox = Table(
    "sync_outbox",
    metadata,
    Column("target", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("key", String(512), nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("op", String(8), nullable=False),
    Column("rank", Integer, nullable=False),
    Column("state", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    Column("next_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # When the row's current version was queued: the age of a pending delivery (lag).
    Column("queued_at", Float, nullable=False),
    PrimaryKeyConstraint("target", "kind", "key", name="pk_sync_outbox"),
    Index("ix_sync_outbox_due", "target", "state", "rank"),
)

# At a receiver: the version of each resource applied here, and from which source.
applied = Table(
    "sync_applied",
    metadata,
    Column("kind", String(32), nullable=False),
    Column("key", String(512), nullable=False),
    Column("source", String(64), nullable=False),
    Column("version", BigInteger, nullable=False),
    PrimaryKeyConstraint("kind", "key", name="pk_sync_applied"),
)

fetches = Table(
    "sync_fetches",
    metadata,
    Column("image_id", String(36), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("source", String(64), nullable=False),
    Column("size", BigInteger, nullable=True),
    Column("state", String(12), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
)

# A push that clashed with a row the receiver holds (receive_item.py). Kept per (source,
# resource) with what the receiver holds there, until resolved (docs/sync.md).
conflicts = Table(
    "sync_conflicts",
    metadata,
    Column("source", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("key", String(512), nullable=False),
    Column("op", String(8), nullable=False),
    Column("clash", String(8), nullable=False),  # id | name | parent
    Column("held_kind", String(32), nullable=False),
    Column("held_key", String(512), nullable=False),
    Column("held_origin", String(64), nullable=True),  # None: this site's own row
    Column("message", Text, nullable=False),
    Column("first_seen", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("count", Integer, nullable=False),
    PrimaryKeyConstraint("source", "kind", "key", name="pk_sync_conflicts"),
)

# Outbox (and fetch) row states.
PENDING, INFLIGHT, DONE, FAILING = "pending", "inflight", "done", "failing"
# The receiver refused the row because it clashes with one it holds: parked, not retried,
# until a newer version or the receiver's request after resolving it.
CONFLICT = "conflict"
UNDELIVERED = (PENDING, INFLIGHT, FAILING)
# Registration states at a source.
REQUESTED, APPROVED, ACCEPTED = "pending", "approved", "accepted"
