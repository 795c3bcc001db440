"""Volumes exported to another site: one NBD export per attachment, over TLS with a
pre-shared key made for that attachment alone.

An attachment whose connector names another site (``{"site": "Berlin", ...}``) gets a
``qemu-storage-daemon`` of its own: the volume's file, an NBD server on this site's
address, ``tls-creds-psk`` whose only key is the attachment's (32 random bytes, the
attachment id as the identity). The connection the attachment answers carries the
address, export name, identity and key; nothing else can read or write the volume
through that port, and deleting the attachment stops the daemon and removes its key
(the grant is revoked). The daemons run detached (``--daemonize``) so that guests at
the other site keep their disks while this site restarts; at start the site starts
again the exports of its remote attachments whose daemon is gone, on the same port
with the same key, so the guests' NBD clients reconnect.

The port is any free one, or one of a fixed range (the setting ``volume_export_ports``:
one export a port, the lowest free first, never one an export of this site holds while
its daemon is down), so that what stands in front of the exports (a firewall, the WAN
emulator of ``python -m bench volume``) can be set up before any export exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("edgefed.volume.exports")

QSD = "qemu-storage-daemon"
EXPORT_NAME = "volume"
START_TIMEOUT = 30.0
PORT_ATTEMPTS = 3  # ports tried before giving up (one may be taken between probe and bind)


class ExportFailed(Exception):
    """The export could not be started (no daemon, no port, a path QEMU cannot parse)."""


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_free(host: str, port: int) -> bool:
    """Whether a listener could bind ``port`` now (as QEMU binds: SO_REUSEADDR, so the
    TIME_WAIT of a stopped export's last connection does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def _alive(pidfile: Path) -> bool:
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class NbdExports:
    def __init__(
        self,
        root: Path,
        *,
        bind_host: str,
        advertised_host: str,
        ports: range | None = None,
        qsd: str = QSD,
    ):
        self.root = root
        self.bind_host = bind_host
        self.advertised_host = advertised_host
        self.ports = ports  # None: any free port
        self.qsd = qsd

    def _dir(self, attachment_id: str) -> Path:
        if not attachment_id.replace("-", "").isalnum():
            raise ExportFailed(f"{attachment_id!r} is not an attachment id")
        return self.root / attachment_id

    async def open(
        self, *, attachment_id: str, volume_path: Path, read_only: bool
    ) -> dict[str, Any]:
        """Start the attachment's export; the ``data`` of its connection info."""
        data = {
            "host": self.advertised_host,
            "port": 0,
            "export": EXPORT_NAME,
            "tls_psk_identity": attachment_id,
            "tls_psk_key": secrets.token_hex(32),
            "access_mode": "ro" if read_only else "rw",
        }
        last: ExportFailed | None = None
        for port in self._candidate_ports():
            data["port"] = port
            try:
                await self._start(attachment_id, volume_path, data)
                return data
            except ExportFailed as exc:  # e.g. the port was taken since the probe
                last = exc
        if last is None:
            assert self.ports is not None
            raise ExportFailed(
                f"every port of volume_export_ports ({self.ports.start}-{self.ports.stop - 1}) "
                "is in use"
            )
        raise last

    def _candidate_ports(self) -> Iterator[int]:
        """At most ``PORT_ATTEMPTS`` ports that are free now: any, or the lowest of the
        range, skipping those of this site's exports (a stopped daemon keeps its port,
        ``restore`` starts it there again)."""
        if self.ports is None:
            for _ in range(PORT_ATTEMPTS):
                yield _free_port(self.bind_host)
            return
        held = self._held_ports()
        tried = 0
        for port in self.ports:
            if tried == PORT_ATTEMPTS:
                return
            if port not in held and _port_free(self.bind_host, port):
                tried += 1
                yield port

    def _held_ports(self) -> set[int]:
        held = set()
        for attachment_id in self.exported():
            with contextlib.suppress(OSError, ValueError):
                held.add(int((self.root / attachment_id / "port").read_text()))
        return held

    async def _start(self, attachment_id: str, volume_path: Path, data: dict[str, Any]) -> None:
        if shutil.which(self.qsd) is None:
            raise ExportFailed(f"{self.qsd} is not installed: volumes cannot be exported")
        if "," in str(volume_path):
            raise ExportFailed(f"the volume path {volume_path} has a comma QEMU cannot parse")
        directory = self._dir(attachment_id)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        (directory / "port").write_text(f"{data['port']}\n")
        keys = directory / "keys.psk"
        fd = os.open(keys, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"{data['tls_psk_identity']}:{data['tls_psk_key']}\n")
        read_only = data.get("access_mode") == "ro"
        argv = [
            self.qsd,
            "--blockdev", f"driver=file,node-name=file0,filename={volume_path},"
                          f"read-only={'on' if read_only else 'off'}",
            "--blockdev", f"driver=raw,node-name=vol0,file=file0,"
                          f"read-only={'on' if read_only else 'off'}",
            "--object", f"tls-creds-psk,id=tls0,endpoint=server,dir={directory}",
            "--nbd-server", f"addr.type=inet,addr.host={self.bind_host},"
                            f"addr.port={data['port']},tls-creds=tls0",
            "--export", f"type=nbd,id=exp0,node-name=vol0,name={EXPORT_NAME},"
                        f"writable={'off' if read_only else 'on'}",
            "--pidfile", str(directory / "qsd.pid"),
            "--daemonize",
        ]  # fmt: skip
        # Output to a file, not a pipe: the daemon keeps what it inherited, and a pipe
        # would stay open after the starting process has exited.
        with open(directory / "qsd.log", "ab") as output:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=output, stderr=output
            )
        try:
            status = await asyncio.wait_for(proc.wait(), START_TIMEOUT)
        except TimeoutError as exc:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            raise ExportFailed("the export's daemon did not start in time") from exc
        if status != 0:
            said = (directory / "qsd.log").read_text(errors="replace")[-300:].strip()
            raise ExportFailed(f"the export's daemon failed: {said or status}")
        log.info("exporting %s for attachment %s on port %s", volume_path, attachment_id,
                 data["port"])  # fmt: skip

    async def close(self, attachment_id: str) -> None:
        """Stop the export and forget its key; nothing to do when there is none."""
        directory = self._dir(attachment_id)
        pidfile = directory / "qsd.pid"
        if _alive(pidfile):
            pid = int(pidfile.read_text().strip())
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            for _ in range(100):  # bounded: 5 s, then KILL
                if not _alive(pidfile):
                    break
                await asyncio.sleep(0.05)
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(shutil.rmtree, directory, True)

    async def restore(self, *, attachment_id: str, volume_path: Path, data: dict[str, Any]) -> None:
        """After a restart: the export runs again, same port and key, if it stopped."""
        if _alive(self._dir(attachment_id) / "qsd.pid"):
            return
        await self._start(attachment_id, volume_path, data)

    async def close_all(self) -> None:
        """Stop every export (a test or a benchmark removing what its site left)."""
        for attachment_id in self.exported():
            await self.close(attachment_id)

    def exported(self) -> list[str]:
        """The attachments whose export directory exists (running or not)."""
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())
