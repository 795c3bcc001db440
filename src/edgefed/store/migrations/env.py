"""Alembic environment: always given a connection by edgefed.store.migrate."""

from __future__ import annotations

from alembic import context

from edgefed.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only when someone runs the alembic CLI
    raise SystemExit("edgefed applies its migrations itself when a site starts")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
