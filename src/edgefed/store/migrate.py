"""Alembic, driven from code: migrations are applied when a site starts.

Alembic is only imported when the database is not already at the head revision, so a
site that restarts on an up-to-date database does not pay its import cost in memory.
A serving site goes further (``cli/serve.py``): a SQLite database below the head is
upgraded by ``python -m edgefed.store.migrate URL``, a process of its own, since what a
first migration imports and builds (alembic, the DDL of every table) stayed resident
in the site after it: 17 MiB of a fresh site's 114 (docs/bench.md, ``footprint``).
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from pathlib import Path

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Connection, make_url

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


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite database URL (any of its drivers), None for another database
    or an in-memory one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def sqlite_needs_upgrade(path: Path) -> bool:
    """Whether the SQLite database at ``path`` is missing or below the known head (read
    with the standard library: nothing of SQLAlchemy's or alembic's is loaded)."""
    head = _known_head()
    if head is None or not path.exists():
        return True
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return True
    return row is None or row[0] != head


def main(argv: list[str]) -> int:
    """``python -m edgefed.store.migrate URL``: bring the database at URL to the head."""
    if len(argv) != 1:
        print("usage: python -m edgefed.store.migrate DATABASE_URL", file=sys.stderr)
        return 2
    path = sqlite_file(argv[0])
    # On the standard library's driver whichever the URL names (the store does the same).
    engine = create_engine(f"sqlite:///{path}" if path is not None else argv[0])
    try:
        with engine.begin() as conn:  # one transaction, as the site's own start migrates
            upgrade_to_head(conn)
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
