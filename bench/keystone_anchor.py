"""The anchor: a real OpenStack Keystone on this machine, set up the way a small site would.

The identity figures mean something only next to the real thing measured in the same
run, on the same cores, with the same load generator. So this module builds (once,
cached under ``.cache/keystone-venv``) a separate virtual environment with the
``keystone`` package from PyPI and gunicorn, then, per run, in a temporary directory:
SQLite database, fernet tokens (keys from ``keystone-manage fernet_setup``), the cache
enabled with the in-process ``dogpile.cache.memory`` backend (no memcached to run),
``db_sync`` and ``bootstrap`` with loopback endpoints, and one sync gunicorn worker
serving Keystone's public WSGI application (``keystone.server.wsgi``) on a free
loopback port. Readiness is a bounded poll of ``GET /v3``; ``stop()`` always runs (the
bench uses it as a context manager).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.cores import SERVER_CPU, pinned_children
from edgefed.testkit.process import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_DIR = REPO_ROOT / ".cache" / "keystone-venv"
# Pinned so every run measures the same anchor; bump deliberately (see docs/bench.md).
REQUIREMENTS = ("keystone==30.0.0", "gunicorn==27.0.1")
STAMP = VENV_DIR / ".bench-installed"
BOOTSTRAP_PASSWORD = "keystone-bench-secret"

CONFIG_TEMPLATE = """\
[DEFAULT]
debug = false
log_file = {workdir}/keystone.log

[database]
connection = sqlite:///{workdir}/keystone.db

[token]
provider = fernet

[fernet_tokens]
key_repository = {workdir}/fernet-keys

[fernet_receipts]
key_repository = {workdir}/fernet-keys

[cache]
enabled = true
backend = dogpile.cache.memory
"""

# oslo.config parses sys.argv when Keystone configures itself, and gunicorn's own
# arguments are not Keystone's: this shim hides them (the usual deployments' WSGI
# scripts run under Apache or uWSGI, whose argv is empty).
WSGI_SHIM = """\
import sys

sys.argv = sys.argv[:1]

from keystone.server import wsgi  # noqa: E402

application = wsgi.initialize_public_application()
"""


def ensure_venv(*, log: bool = True) -> Path:
    """The Keystone virtual environment, created with pip on first use and then reused."""
    wanted = "\n".join(REQUIREMENTS)
    python = VENV_DIR / "bin" / "python"
    if STAMP.exists() and STAMP.read_text() == wanted and python.exists():
        return VENV_DIR
    if log:
        print(f"bench: installing {' '.join(REQUIREMENTS)} into {VENV_DIR} (once)", flush=True)
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV_DIR)], check=True, timeout=300)
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    done = subprocess.run(
        [*pip, *REQUIREMENTS], capture_output=True, text=True, timeout=1800, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip could not install the anchor:\n{done.stderr[-4000:]}")
    STAMP.write_text(wanted)
    return VENV_DIR


@dataclass
class KeystoneAnchor:
    """One Keystone under gunicorn (one sync worker) on a loopback port."""

    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="keystone-")))
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/v3"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _manage(self, *args: str) -> None:
        manage = str(VENV_DIR / "bin" / "keystone-manage")
        config = str(self.workdir / "keystone.conf")
        done = subprocess.run(
            [manage, "--config-file", config, *args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"keystone-manage {args[0]} failed:\n{done.stderr[-4000:]}")

    def start(self, *, timeout: float = 120.0) -> KeystoneAnchor:
        """Set up and serve; on any failure nothing is left running or on disk."""
        ensure_venv()
        self.port = self.port or free_port()
        conf = CONFIG_TEMPLATE.format(workdir=self.workdir)
        (self.workdir / "keystone.conf").write_text(conf)
        (self.workdir / "fernet-keys").mkdir(exist_ok=True)
        (self.workdir / "keystone_bench_wsgi.py").write_text(WSGI_SHIM)
        user = str(os.getuid())
        group = str(os.getgid())
        self._manage("fernet_setup", "--keystone-user", user, "--keystone-group", group)
        self._manage("db_sync")
        self._manage(
            "bootstrap",
            "--bootstrap-password",
            BOOTSTRAP_PASSWORD,
            "--bootstrap-region-id",
            "RegionOne",
            "--bootstrap-admin-url",
            self.auth_url,
            "--bootstrap-public-url",
            self.auth_url,
            "--bootstrap-internal-url",
            self.auth_url,
        )
        env = dict(os.environ, OS_KEYSTONE_CONFIG_DIR=str(self.workdir))
        env.pop("PYTHONPATH", None)
        args = [
            str(VENV_DIR / "bin" / "gunicorn"),
            "--workers",
            "1",
            "--worker-class",
            "sync",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--backlog",
            "2048",
            "--no-control-socket",
            "--chdir",
            str(self.workdir),
            "--error-logfile",
            str(self.workdir / "gunicorn.log"),
            "keystone_bench_wsgi:application",
        ]
        with pinned_children(SERVER_CPU):
            self.proc = subprocess.Popen(
                args,
                cwd=self.workdir,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"keystone exited early:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/v3", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)  # polling a readiness condition with a bounded deadline
        raise RuntimeError(f"keystone not ready within {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for name in ("gunicorn.log", "keystone.log"):
            path = self.workdir / name
            if path.exists():
                out += path.read_text(errors="replace").splitlines()[-lines:]
        return "\n".join(out)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> KeystoneAnchor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
