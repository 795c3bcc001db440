"""Alembic, driven from code: migrations are applied when a site starts.

Alembic is only imported when the database is not already at the head revision, so a
site that restarts on an up-to-date database does not pay its import cost in memory.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    head = script.get_current_head()
    assert head is not None
    return head


def _current_revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
    return None if row is None else str(row[0])


def _known_head() -> str | None:
    marker = MIGRATIONS_DIR / "HEAD"
    return marker.read_text().strip() if marker.exists() else None


def upgrade_to_head(conn: Connection) -> None:
    current = _current_revision(conn)
    if current is not None and current == _known_head():
        return
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    command.upgrade(cfg, "head")
