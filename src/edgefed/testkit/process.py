"""Real ``edgefed site serve`` processes on loopback, for end-to-end tests.

``SiteProcess.start()`` returns once the site printed its ready line (an event, not a
sleep); ``kill()`` is ``kill -9``; ``restart()`` starts it again on the same port and
data directory. Every process a test starts is stopped by ``stop()`` (the fixtures
guarantee it).

``tls=True`` serves HTTPS (``tls = true``); with ``tls_cert_file``/``tls_key_file`` and
``ca_file`` (a ``core.localca`` CA that issued them) clients verify the site the usual
way through ``verify``; without, ``verify`` accepts the site-key certificate unchecked
(a test's client is not a site: it has no pin). The data directory is 0700 and
``site.toml`` 0600, as ``edgefed up`` makes them.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edgefed.core.files import write_private

READY_PREFIX = "EDGEFED READY"
DEFAULT_PASSWORD = "admin-secret"


def pid_alive(pid: int) -> bool:
    """Whether a process runs (one that exited and awaits its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def qemu_processes() -> Iterator[tuple[int, list[bytes]]]:
    """Every running (not zombie) ``qemu-system-*`` process: its pid and its argv."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and b"qemu-system" in argv[0]:
            yield int(pid), argv


class LowPorts:
    """Site ports below the kernel's ephemeral range (32768-60999), for large fleets: a
    hundred sites take a minute or more to start, and a port picked from the ephemeral
    range may meanwhile become some process's outgoing connection ("Address already in
    use" when the site binds it)."""

    def __init__(self, low: int = 20000, high: int = 32000) -> None:
        self.rng = random.Random()
        self.low, self.high = low, high
        self.taken: set[int] = set()

    def __call__(self, host: str = "127.0.0.1") -> int:
        for _ in range(1000):  # bounded: the range has 12,000 ports
            port = self.rng.randrange(self.low, self.high)
            if port in self.taken:
                continue
            with socket.socket() as probe:
                try:
                    probe.bind((host, port))
                except OSError:
                    continue
            self.taken.add(port)
            return port
        raise RuntimeError("no free port below the ephemeral range")


_LOW_PORTS = LowPorts()


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now, for a process to listen on a moment later: below the
    kernel's ephemeral range, where no outgoing connection takes it meanwhile (a port
    the kernel handed out as free was taken by one before the site bound it: "Address
    already in use", in a loaded suite)."""
    return _LOW_PORTS(host)


@dataclass
class SiteProcess:
    name: str
    data_dir: Path
    port: int = 0
    password: str = DEFAULT_PASSWORD
    database_url: str | None = None
    extra_args: list[str] = field(default_factory=list)
    extra_config: str = ""
    tls: bool = False
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    ca_file: Path | None = None  # the CA that issued tls_cert_file, for clients
    proc: subprocess.Popen[str] | None = None
    url: str = ""
    public_url: str = ""
    log_path: Path | None = None
    _lines: list[str] = field(default_factory=list)

    def start(self, timeout: float = 120.0) -> SiteProcess:
        if self.port == 0:
            self.port = free_port()
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        config = self.data_dir / "site.toml"
        tls = ""
        if self.tls:
            tls = "tls = true\n"
            if self.tls_cert_file is not None:
                tls += f'tls_cert_file = "{self.tls_cert_file}"\n'
            if self.tls_key_file is not None:
                tls += f'tls_key_file = "{self.tls_key_file}"\n'
        write_private(
            config,
            f'name = "{self.name}"\nport = {self.port}\ndata_dir = "{self.data_dir}"\n'
            f'sqlite_synchronous = "FULL"\n{tls}{self.extra_config}',
        )
        args = [sys.executable, "-m", "edgefed.cli.main", "site", "serve", "--config", str(config)]
        if self.database_url:
            args += ["--database-url", self.database_url]
        args += self.extra_args
        env = dict(os.environ, EDGEFED_ADMIN_PASSWORD=self.password)
        self.log_path = self.data_dir / "site.log"
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=log, text=True, env=env, bufsize=1
        )
        log.close()
        ready = threading.Event()
        assert self.proc.stdout is not None
        stdout = self.proc.stdout

        def pump() -> None:
            for line in stdout:
                self._lines.append(line)
                if line.startswith(READY_PREFIX):
                    fields = dict(f.split("=", 1) for f in line.split()[2:] if "=" in f)
                    # Tests talk to the site directly; other sites use its public URL.
                    self.public_url = fields["url"]
                    self.url = fields.get("listen", fields["url"])
                    ready.set()
            ready.set()

        threading.Thread(target=pump, daemon=True).start()
        if not ready.wait(timeout) or not self.url:
            self.stop()
            raise RuntimeError(f"site {self.name} did not start:\n{self.log_tail()}")
        return self

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text().splitlines()[-lines:])

    @property
    def auth_url(self) -> str:
        return f"{self.url}/identity/v3"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What an httpx client passes as ``verify=`` to talk to this site directly."""
        if not self.tls:
            return True
        if self.ca_file is not None:
            return ssl.create_default_context(cafile=str(self.ca_file))
        return False  # the self-signed site-key certificate: nothing to verify it against

    def kill(self) -> None:
        """kill -9: no shutdown hook runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> SiteProcess:
        self.stop()
        self.url = ""
        return self.start()

    def clouds_entry(
        self, *, user: str = "admin", password: str | None = None, project: str = "admin"
    ) -> dict[str, object]:
        return {
            "auth": {
                "auth_url": self.auth_url,
                "username": user,
                "password": password or self.password,
                "project_name": project,
                "user_domain_name": "Default",
                "project_domain_name": "Default",
            },
            "region_name": self.name,
            "identity_api_version": 3,
            **({"cacert": str(self.ca_file)} if self.ca_file is not None else {}),
        }
