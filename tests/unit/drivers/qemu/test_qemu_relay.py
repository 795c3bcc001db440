"""The agent's relay of a unix socket to an NBD export's TCP address (``relay.py``):
bytes go both ways unchanged, either side ending closes the other, a client that stops
reading stalls its peer instead of filling the agent, and a relay stopped and started
again (the agent restarting) serves new connections on the same path.

The export is a TCP server of the test on loopback; no QEMU runs here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edgefed.drivers.qemu.cmdline import DiskPlan, blockdev_node
from edgefed.drivers.qemu.layout import SUN_PATH_MAX, StateLayout
from edgefed.drivers.qemu.relay import CHUNK, NbdRelay, NbdRelays, relay_socket
from edgefed.testkit.wait import eventually

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]
MIB = 1 << 20


@dataclass
class Upstream:
    """A TCP server standing for the export: each connection is given to ``handler``."""

    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
    server: asyncio.Server | None = None
    accepted: asyncio.Queue[Streams] = field(default_factory=asyncio.Queue)

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.accepted.put((reader, writer))
        await self.handler(reader, writer)


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Keep the connection as it is; the test drives it through ``accepted``."""


@contextlib.asynccontextmanager
async def upstream(handler: Callable[..., Awaitable[None]]) -> AsyncIterator[Upstream]:
    up = Upstream(handler)
    up.server = await asyncio.start_server(up._serve, "127.0.0.1", 0)
    try:
        yield up
    finally:
        up.server.close()
        while not up.accepted.empty():
            up.accepted.get_nowait()[1].close()


@pytest.fixture
def sockets() -> Iterator[Path]:
    """A short directory for the relays' sockets (pytest's paths may exceed sun_path)."""
    with tempfile.TemporaryDirectory(prefix="efr-") as directory:
        yield Path(directory)


async def read_all(reader: asyncio.StreamReader, size: int) -> bytes:
    return await asyncio.wait_for(reader.readexactly(size), 30)


async def test_bytes_go_both_ways_unchanged(sockets: Path) -> None:
    async with upstream(echo) as up:
        relay = NbdRelay(sockets / "a.sock", "127.0.0.1", up.port)
        await relay.start()
        try:
            assert (sockets / "a.sock").stat().st_mode & 0o777 == 0o600
            reader, writer = await asyncio.open_unix_connection(str(sockets / "a.sock"))
            data = os.urandom(8 * MIB)  # many chunks: the buffers' limits come into play

            async def send() -> None:
                for offset in range(0, len(data), 100_000):
                    writer.write(data[offset : offset + 100_000])
                    await writer.drain()

            _, echoed = await asyncio.gather(send(), read_all(reader, len(data)))
            assert echoed == data
            writer.close()
        finally:
            await relay.close()
        assert not (sockets / "a.sock").exists()


async def test_either_side_ending_closes_the_other(sockets: Path) -> None:
    async with upstream(hold) as up:
        relay = NbdRelay(sockets / "b.sock", "127.0.0.1", up.port)
        await relay.start()
        try:
            # the export ends: the client reads what was sent, then the end
            reader, writer = await asyncio.open_unix_connection(str(sockets / "b.sock"))
            up_reader, up_writer = await asyncio.wait_for(up.accepted.get(), 10)
            up_writer.write(b"last words")
            up_writer.close()
            assert await asyncio.wait_for(reader.read(), 10) == b"last words"
            writer.close()

            # the client ends (QEMU closing its NBD connection): the export sees the end
            reader, writer = await asyncio.open_unix_connection(str(sockets / "b.sock"))
            up_reader, up_writer = await asyncio.wait_for(up.accepted.get(), 10)
            writer.write(b"bye")
            await writer.drain()
            writer.close()
            assert await asyncio.wait_for(up_reader.read(), 10) == b"bye"
            up_writer.close()

            async def let_go() -> bool:
                return not relay._connections

            await eventually(let_go, within=10, what="no relayed connection left")
        finally:
            await relay.close()


async def test_an_unreachable_export_closes_the_client_which_may_try_again(sockets: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    relay = NbdRelay(sockets / "c.sock", "127.0.0.1", port)
    await relay.start()
    try:
        reader, writer = await asyncio.open_unix_connection(str(sockets / "c.sock"))
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        assert relay.serving  # the relay itself stays for the next attempt
    finally:
        await relay.close()


async def test_a_client_that_stops_reading_stalls_the_export_not_the_agent(
    sockets: Path,
) -> None:
    async with upstream(hold) as up:
        relay = NbdRelay(sockets / "d.sock", "127.0.0.1", up.port)
        await relay.start()
        try:
            reader, writer = await asyncio.open_unix_connection(str(sockets / "d.sock"))
            _, up_writer = await asyncio.wait_for(up.accepted.get(), 10)
            block = os.urandom(MIB)
            sent = 0
            while sent < 64 * MIB:  # what the export gets rid of while the client reads nothing
                up_writer.write(block)
                try:
                    await asyncio.wait_for(up_writer.drain(), 1.0)
                except TimeoutError:
                    break  # stalled: everything between is full
                sent += len(block)
            # kernel socket buffers (a few MiB on loopback) and a few chunks in the relay
            assert sent < 32 * MIB, f"{sent} bytes taken by a client that reads nothing"
            sent += len(block)  # the last write is buffered in the export's transport
            received = await read_all(reader, sent)  # the client reads again: nothing lost
            assert received == block * (sent // MIB)
            writer.close()
            up_writer.close()
        finally:
            await relay.close()


async def test_a_relay_stopped_and_started_again_serves_the_same_path(sockets: Path) -> None:
    """The agent restarting: its relay goes (connections end, the socket file too), the
    next agent's relay listens on the same path, and a client connecting again is
    relayed as before."""
    async with upstream(echo) as up:
        path = sockets / "e.sock"
        first = NbdRelay(path, "127.0.0.1", up.port)
        await first.start()
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"ping")
        assert await read_all(reader, 4) == b"ping"
        await first.close()  # the agent stops
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        assert not path.exists()
        with pytest.raises(OSError):
            await asyncio.open_unix_connection(str(path))

        path.touch()  # a stale file where the socket was (an agent killed -9)
        second = NbdRelay(path, "127.0.0.1", up.port)
        await second.start()
        try:
            reader, writer = await asyncio.open_unix_connection(str(path))
            writer.write(b"pong")
            assert await read_all(reader, 4) == b"pong"
            writer.close()
        finally:
            await second.close()


def nbd_disk(sockets: Path | None, node: str, port: int) -> DiskPlan:
    nbd = {"host": "127.0.0.1", "port": port, "export": "volume", "identity": "a",
           "tls_id": f"tls-{node}", "psk_dir": "/k"}  # fmt: skip
    if sockets is not None:
        nbd["socket"] = str(relay_socket(sockets, node))
    return DiskPlan(node=node, path="", format="raw", nbd=nbd)


async def test_a_guest_in_a_namespace_names_the_relay_and_others_the_export(
    sockets: Path,
) -> None:
    async with upstream(echo) as up:
        relays = NbdRelays()
        inside = nbd_disk(sockets, "v1", up.port)
        outside = nbd_disk(None, "v2", up.port)
        assert inside.nbd is not None
        path = Path(inside.nbd["socket"])
        assert path.parent == sockets
        assert blockdev_node(inside)["file"]["server"] == {"type": "unix", "path": str(path)}
        assert blockdev_node(outside)["file"]["server"] == {
            "type": "inet",
            "host": "127.0.0.1",
            "port": str(up.port),
        }
        await relays.open(inside)
        await relays.open(inside)  # sent again: the same relay
        await relays.open(outside)  # nothing to relay
        assert relays.sockets() == [path]
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"x" * CHUNK)
        assert await read_all(reader, CHUNK) == b"x" * CHUNK
        writer.close()
        await relays.close(inside)
        assert relays.sockets() == [] and not path.exists()
        await relays.open(inside)
        await relays.close_all()
        assert relays.sockets() == []


def test_a_relay_socket_fits_sun_path_in_a_deep_state_directory(tmp_path: Path) -> None:
    layout = StateLayout(tmp_path / ("d" * 60))
    files = layout.guest("6a3c1f3e-8d2b-4f1a-9c77-1e2d3c4b5a69")
    node = "v" + "f" * 30  # the longest node name a volume gets
    assert len(str(relay_socket(files.sockets, node))) <= SUN_PATH_MAX
