"""sync: capture triggers on the synchronisable tables

Revision ID: 0002_sync_triggers
Revises: 0001_initial

Hand-written (``make migrations`` regenerates only 0001_initial and keeps this one):
every insert, update and delete of a synchronisable table writes (kind, key, op) to
``sync_changes`` in the same transaction (see edgefed.store.sync.triggers). SQLite and
PostgreSQL each get their own trigger dialect.
"""

from __future__ import annotations

from alembic import op

from edgefed.store.sync.triggers import capture_ddl, drop_capture_ddl

revision = "0002_sync_triggers"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in capture_ddl(dialect):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for statement in drop_capture_ddl(dialect):
        op.execute(statement)
