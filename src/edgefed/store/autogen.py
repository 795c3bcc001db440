"""Pre-release: (re)generate the initial migration from the table modules.

``make migrations`` deletes 0001_initial.py and runs this. Once edgefed has a release,
new migrations are added on top instead.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import create_async_engine

from edgefed.store.migrate import MIGRATIONS_DIR


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_async_engine(f"sqlite+aiosqlite:///{Path(tmp) / 'empty.db'}")
        async with engine.begin() as conn:

            def run(sync_conn: object) -> None:
                cfg = Config()
                cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
                cfg.set_main_option("file_template", "%%(rev)s")
                cfg.attributes["connection"] = sync_conn
                command.revision(
                    cfg, message="initial schema", autogenerate=True, rev_id="0001_initial"
                )

            await conn.run_sync(run)
        await engine.dispose()
    (MIGRATIONS_DIR / "HEAD").write_text("0001_initial\n")


if __name__ == "__main__":
    asyncio.run(main())
