"""The QMP client against a scripted monitor: replies, errors, events, bounds, fds."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgefed.drivers.qemu.errors import QmpDisconnected, QmpError, QmpTimeout
from edgefed.drivers.qemu.qmp import QmpClient

Handler = Callable[[dict, "FakeMonitor"], None]


class FakeMonitor:
    """A QMP server on a unix socket, in a thread: greets, then answers with ``handler``."""

    def __init__(self, path: Path, handler: Handler, *, greet: bool = True) -> None:
        self.path = path
        self.handler = handler
        self.greet = greet
        self.received: list[dict] = []
        self.fds: list[int] = []
        self.conn: socket.socket | None = None
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def send(self, message: dict) -> None:
        assert self.conn is not None
        self.conn.sendall(json.dumps(message).encode() + b"\r\n")

    def _serve(self) -> None:
        try:
            self.conn, _ = self.server.accept()
        except OSError:
            return
        if self.greet:
            self.send({"QMP": {"version": {"qemu": {"major": 7}}, "capabilities": []}})
        buffer = b""
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.conn, 65536, 4)
            except OSError:
                return
            if not data:
                return
            self.fds.extend(fds)
            buffer += data
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                message = json.loads(line)
                self.received.append(message)
                if message["execute"] == "qmp_capabilities":
                    self.send({"return": {}, "id": message["id"]})
                else:
                    self.handler(message, self)

    def close(self) -> None:
        for sock in (self.conn, self.server):
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
        self.thread.join(5)
        for fd in self.fds:
            os.close(fd)


@pytest.fixture
def monitor(tmp_path: Path) -> Iterator[Callable[..., FakeMonitor]]:
    made: list[FakeMonitor] = []

    def make(handler: Handler, **kwargs: bool) -> FakeMonitor:
        fake = FakeMonitor(tmp_path / f"qmp{len(made)}.sock", handler, **kwargs)
        made.append(fake)
        return fake

    yield make
    for fake in made:
        fake.close()


def echo(message: dict, fake: FakeMonitor) -> None:
    fake.send({"return": {"echo": message.get("arguments")}, "id": message["id"]})


async def test_commands_get_their_own_replies_in_any_order(monitor) -> None:
    held: list[dict] = []

    def reply_in_reverse(message: dict, fake: FakeMonitor) -> None:
        held.append(message)
        if len(held) == 2:
            for m in reversed(held):
                fake.send({"return": m["arguments"]["n"], "id": m["id"]})

    fake = monitor(reply_in_reverse)
    client = await QmpClient.connect(fake.path, timeout=2)
    try:
        assert client.greeting["version"]["qemu"]["major"] == 7
        first, second = await asyncio.gather(
            client.execute("x", {"n": 1}), client.execute("x", {"n": 2})
        )
        assert (first, second) == (1, 2)
    finally:
        await client.close()


async def test_an_error_reply_names_the_class_and_cause(monitor) -> None:
    def refuse(message: dict, fake: FakeMonitor) -> None:
        fake.send(
            {"error": {"class": "DeviceNotFound", "desc": "no such device"}, "id": message["id"]}
        )

    client = await QmpClient.connect(monitor(refuse).path, timeout=2)
    try:
        with pytest.raises(QmpError, match="device_del: no such device") as raised:
            await client.execute("device_del", {"id": "x"})
        assert raised.value.error_class == "DeviceNotFound"
    finally:
        await client.close()


async def test_an_event_expected_before_the_command_is_never_missed(monitor) -> None:
    def reset_then_reply(message: dict, fake: FakeMonitor) -> None:
        # the event comes before the reply, as QEMU sends RESET during system_reset
        fake.send({"event": "RESET", "data": {"guest": False}, "timestamp": {}})
        fake.send({"return": {}, "id": message["id"]})

    client = await QmpClient.connect(monitor(reset_then_reply).path, timeout=2)
    seen: list[str] = []
    client.add_listener(lambda event: seen.append(event["event"]))
    try:
        reset = client.expect("RESET")
        await client.execute("system_reset")
        event = await reset.wait(timeout=2)
        assert event["data"] == {"guest": False}
        assert seen == ["RESET"]
    finally:
        await client.close()


async def test_expectations_filter_events(monitor) -> None:
    def two_devices(message: dict, fake: FakeMonitor) -> None:
        fake.send({"return": {}, "id": message["id"]})
        for device in ("other", "vol1-disk"):
            fake.send({"event": "DEVICE_DELETED", "data": {"device": device}})

    client = await QmpClient.connect(monitor(two_devices).path, timeout=2)
    try:
        deleted = client.expect(
            "DEVICE_DELETED", where=lambda e: e["data"]["device"] == "vol1-disk"
        )
        await client.execute("device_del", {"id": "vol1-disk"})
        assert (await deleted.wait(timeout=2))["data"]["device"] == "vol1-disk"
    finally:
        await client.close()


async def test_a_silent_monitor_times_out_within_the_bound(monitor) -> None:
    client = await QmpClient.connect(monitor(lambda m, f: None).path, timeout=2)
    try:
        started = time.monotonic()
        with pytest.raises(QmpTimeout, match="query-status"):
            await client.execute("query-status", timeout=0.2)
        with pytest.raises(QmpTimeout, match="SHUTDOWN"):
            await client.expect("SHUTDOWN").wait(timeout=0.2)
        assert time.monotonic() - started < 1.0
    finally:
        await client.close()


async def test_no_greeting_fails_the_connection_within_the_bound(monitor) -> None:
    fake = monitor(echo, greet=False)
    started = time.monotonic()
    with pytest.raises(QmpTimeout, match="greeting"):
        await QmpClient.connect(fake.path, timeout=0.3)
    assert time.monotonic() - started < 1.5


async def test_nothing_listening_is_a_disconnection(tmp_path: Path) -> None:
    with pytest.raises(QmpDisconnected, match="cannot connect"):
        await QmpClient.connect(tmp_path / "absent.sock", timeout=1)


async def test_qemu_going_away_fails_what_waits_and_closes_the_client(monitor) -> None:
    def hang_up(message: dict, fake: FakeMonitor) -> None:
        assert fake.conn is not None
        fake.conn.shutdown(socket.SHUT_RDWR)

    client = await QmpClient.connect(monitor(hang_up).path, timeout=2)
    try:
        shutdown = client.expect("SHUTDOWN")
        with pytest.raises(QmpDisconnected):
            await client.execute("quit")
        with pytest.raises(QmpDisconnected):
            await shutdown.wait(timeout=1)
        assert await asyncio.wait_for(client.closed, 1)
        assert not client.is_open
        with pytest.raises(QmpDisconnected):
            await client.execute("query-status")
    finally:
        await client.close()


async def test_file_descriptors_ride_with_their_command(monitor, tmp_path: Path) -> None:
    fake = monitor(echo)
    client = await QmpClient.connect(fake.path, timeout=2)
    target = tmp_path / "state"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        await client.execute("getfd", {"fdname": "suspend"}, fds=[fd])
    finally:
        os.close(fd)
        await client.close()
    assert fake.received[-1] == {"execute": "getfd", "arguments": {"fdname": "suspend"}, "id": 2}
    assert len(fake.fds) == 1
    os.write(fake.fds[0], b"written by the monitor")  # the very file, opened by us
    assert target.read_bytes() == b"written by the monitor"
