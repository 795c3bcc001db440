"""A throw-away PostgreSQL server for the test suite (Debian's postgresql package).

The server runs from a temporary directory on a free loopback port with ``trust``
authentication, as the ``postgres`` system user when the suite runs as root (the
server refuses to run as root). Each test gets a fresh database by name, a copy of one
migrated once per server (``migrated_database``): copying a database is a fraction of
what migrating an empty one costs.
"""

from __future__ import annotations

import asyncio
import glob
import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from edgefed.store.engine import Store
from edgefed.testkit.process import free_port

READY_DEADLINE = 60.0
# The database migrated once, that every ``migrated_database`` copies.
TEMPLATE = "edgefed_migrated"


def postgres_bindir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for c in candidates:
        if Path(c, "initdb").exists():
            return Path(c)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")


@dataclass
class PostgresServer:
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="edgefed-pg-")))
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    template_ready: bool = False

    @property
    def _as_user(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def start(self) -> PostgresServer:
        bindir = postgres_bindir()
        self.port = free_port()
        data = self.root / "data"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(
            [
                *self._as_user,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
            ],
            check=True,
            capture_output=True,
        )
        log = (self.root / "server.log").open("ab")
        self.proc = subprocess.Popen(
            [
                *self._as_user,
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.root),
                "-c",
                "fsync=on",
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=64MB",
            ],
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + READY_DEADLINE
        while time.monotonic() < deadline:
            ready = subprocess.run(
                [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
                check=False,
            )
            if ready.returncode == 0:
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)  # bounded readiness poll of an external server
        self.stop()
        raise RuntimeError(f"PostgreSQL did not start: {(self.root / 'server.log').read_text()}")

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create database ``name`` (empty, or a copy of ``template``); its asyncpg
        SQLAlchemy URL."""
        bindir = postgres_bindir()
        subprocess.run(
            [
                str(bindir.parent / "bin" / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                *(["-T", template] if template else []),
                name,
            ],
            check=True,
            capture_output=True,
        )
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    def migrated_database(self, name: str) -> str:
        """Create database ``name`` migrated to the head: a copy of ``TEMPLATE``, which
        the first call makes and migrates (and leaves without a connection: a database
        being copied must have none)."""
        if not self.template_ready:
            url = self.create_database(TEMPLATE)
            # In a thread of its own: the caller may be a test whose event loop runs.
            with ThreadPoolExecutor(1) as pool:
                pool.submit(asyncio.run, _migrate(url)).result()
            self.template_ready = True
        return self.create_database(name, template=TEMPLATE)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)


async def _migrate(url: str) -> None:
    store = await Store.open(url)
    await store.close()
