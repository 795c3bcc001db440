"""Remote volumes of guests in a network namespace: a unix socket relayed to the export.

A guest with NICs runs its QEMU inside the site's network namespace (``ip netns
exec``), next to its taps. An NBD export of another site is reached from the host's
namespace, where the agent runs, and often not from that one (an export on 127.0.0.x
never is). So the NBD disks of such a guest name a unix socket in the guest's
directory (``nbd-<12 hex>.sock``: a path, which does not depend on the network
namespace), and the agent listens there and relays each connection to the export's
TCP address. It relays bytes only: TLS with the pre-shared key stays end to end,
between QEMU and the exporting site's daemon. Either side ending closes both; each
direction holds at most a few ``CHUNK`` in the relay (a read waits until the other
side took the previous write), so a client that stops reading stalls its peer rather
than filling the agent's memory.

The relays live in the agent's process, one set per hypervisor: a disk's relay starts
before its ``blockdev-add`` (or the guest's launch), stops at its detach and at the
guest's destroy, and when the agent restarts, ``adopt()`` starts again the relay of
every NBD disk of every guest still running. Meanwhile QEMU's NBD client, with
``reconnect-delay``, keeps trying to reconnect: the guest's I/O stalls, it does not
fail. A guest outside any namespace keeps connecting to the export directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from pathlib import Path

from edgefed.drivers.qemu.cmdline import DiskPlan, LaunchPlan

log = logging.getLogger("edgefed.qemu.relay")

CHUNK = 256 * 1024  # bytes read at a time, and each buffer's high-water mark
CONNECT_TIMEOUT = 10.0  # to the export; a refusal closes QEMU's side, which tries again


def relay_socket(sockets: Path, node: str) -> Path:
    """The relay's socket of a guest's disk: short, so the path fits ``sun_path``."""
    return sockets / f"nbd-{hashlib.sha256(node.encode()).hexdigest()[:12]}.sock"


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until end of file or a broken connection; one chunk in flight at a time."""
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()


class NbdRelay:
    """One unix socket whose connections are relayed to ``host:port``."""

    def __init__(self, path: Path, host: str, port: int) -> None:
        self.path = path
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def target(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def serving(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        """Listen; a socket file left by an agent that was killed is replaced."""
        if self._server is not None:
            return
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(
            self._serve, path=str(self.path), limit=CHUNK
        )
        os.chmod(self.path, 0o600)

    async def close(self) -> None:
        """Stop listening, end every relayed connection, remove the socket file."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        connections = list(self._connections)
        for task in connections:
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)
        await server.wait_closed()
        self.path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._relay(reader, writer)
        finally:
            self._connections.discard(task)

    async def _relay(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        writers = [client_writer]
        try:
            try:
                upstream_reader, upstream_writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port, limit=CHUNK), CONNECT_TIMEOUT
                )
            except (OSError, TimeoutError) as exc:
                log.warning("the NBD export %s:%s is not reachable: %s", self.host, self.port, exc)
                return
            writers.append(upstream_writer)
            for writer in writers:
                writer.transport.set_write_buffer_limits(high=CHUNK)
            pipes = {
                asyncio.create_task(_pipe(client_reader, upstream_writer)),
                asyncio.create_task(_pipe(upstream_reader, client_writer)),
            }
            try:
                await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pipe in pipes:
                    pipe.cancel()
                await asyncio.gather(*pipes, return_exceptions=True)
        finally:
            # An end closes both sides once what is buffered went out; a relay being
            # stopped drops them at once (its peer may have stopped reading).
            task = asyncio.current_task()
            stopping = task is not None and task.cancelling() > 0
            for writer in writers:
                if stopping:
                    writer.transport.abort()
                else:
                    writer.close()


class NbdRelays:
    """The relays of one hypervisor's guests, by socket path."""

    def __init__(self) -> None:
        self._relays: dict[Path, NbdRelay] = {}

    def sockets(self) -> list[Path]:
        """The socket paths relayed now."""
        return sorted(self._relays)

    async def open(self, disk: DiskPlan) -> None:
        """Serve the disk's socket when it has one (an NBD disk of a guest in a
        namespace); nothing to do when it is served already."""
        if disk.nbd is None or not disk.nbd.get("socket"):
            return
        path = Path(disk.nbd["socket"])
        target = (str(disk.nbd["host"]), int(disk.nbd["port"]))
        relay = self._relays.get(path)
        if relay is not None and relay.target == target and relay.serving:
            return
        if relay is not None:
            await relay.close()
        relay = NbdRelay(path, *target)
        await relay.start()
        self._relays[path] = relay

    async def open_all(self, plan: LaunchPlan) -> None:
        for disk in (*plan.disks, *plan.volumes):
            await self.open(disk)

    async def close(self, disk: DiskPlan) -> None:
        if disk.nbd is None or not disk.nbd.get("socket"):
            return
        relay = self._relays.pop(Path(disk.nbd["socket"]), None)
        if relay is not None:
            await relay.close()

    async def close_all(self, plan: LaunchPlan | None = None) -> None:
        """Stop the relays of the plan's disks, or every relay (the agent leaving)."""
        if plan is not None:
            for disk in (*plan.disks, *plan.volumes):
                await self.close(disk)
            return
        relays, self._relays = list(self._relays.values()), {}
        for relay in relays:
            await relay.close()
