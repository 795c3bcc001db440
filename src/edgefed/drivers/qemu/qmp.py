"""A small asyncio client of QEMU's monitor protocol (QMP), with every wait bounded.

The protocol: connect to the guest's ``qmp.sock``, read the greeting ``{"QMP": …}``,
send ``qmp_capabilities``, then one ``{"execute", "arguments", "id"}`` per command;
the reply carries the same ``id`` with ``"return"`` or ``"error"``. Events
(``SHUTDOWN``, ``STOP``, ``RESUME``, ``RESET``, ``MIGRATION``, ``DEVICE_DELETED``,
``JOB_STATUS_CHANGE``, …) arrive at any time in between.

Written here rather than taken from ``qemu.qmp`` (PyPI) because the driver needs three
things done its way: file descriptors passed with a command (``getfd`` before a
``migrate`` to a file, so that QEMU's sandbox may forbid it to spawn a ``cat``), an
expectation registered *before* the command that causes the event (so a fast event
is never missed), and one bound on every wait, connection included.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import itertools
import json
import socket
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from edgefed.drivers.qemu.errors import QmpDisconnected, QmpError, QmpTimeout

Event = dict[str, Any]
EventListener = Callable[[Event], None]
MAX_MESSAGE = 16 * 1024 * 1024  # query-qmp-schema is ~200 KB; a runaway peer is not


class Expectation:
    """An event awaited, registered before the command that causes it."""

    def __init__(self, names: Collection[str], where: Callable[[Event], bool] | None) -> None:
        self.names = frozenset(names)
        self.where = where
        self.future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()

    def offer(self, event: Event) -> None:
        if self.future.done() or event.get("event") not in self.names:
            return
        if self.where is None or self.where(event):
            self.future.set_result(event)

    async def wait(self, *, timeout: float) -> Event:
        try:
            return await asyncio.wait_for(asyncio.shield(self.future), timeout)
        except TimeoutError:
            names = "/".join(sorted(self.names))
            raise QmpTimeout(f"no {names} event within {timeout:g} s") from None


class QmpClient:
    """One open monitor connection. ``connect`` it; ``close`` it when done."""

    def __init__(self, sock: socket.socket, *, timeout: float) -> None:
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self.timeout = timeout
        self.greeting: dict[str, Any] = {}
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._expectations: list[Expectation] = []
        self._listeners: list[EventListener] = []
        self._greeted: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self._send_lock = asyncio.Lock()
        self.closed: asyncio.Future[str] = self._loop.create_future()
        self._reader = asyncio.create_task(self._read(), name="qmp-reader")

    @classmethod
    async def connect(cls, path: Path | str, *, timeout: float = 10.0) -> QmpClient:
        """Connect, read the greeting and negotiate capabilities, within ``timeout``."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        try:
            await asyncio.wait_for(loop.sock_connect(sock, str(path)), timeout)
        except TimeoutError:
            sock.close()
            raise QmpTimeout(f"QMP socket {path} did not accept within {timeout:g} s") from None
        except OSError as exc:
            sock.close()
            raise QmpDisconnected(f"cannot connect to QMP socket {path}: {exc}") from exc
        client = cls(sock, timeout=timeout)
        try:
            client.greeting = await client._await(client._greeted, timeout, "the QMP greeting")
            await client.execute("qmp_capabilities")
        except BaseException:
            await client.close()
            raise
        return client

    async def _await(self, future: asyncio.Future[Any], timeout: float, what: str) -> Any:
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            raise QmpTimeout(f"no answer to {what} within {timeout:g} s") from None

    async def _read(self) -> None:
        buffer = b""
        reason = "QEMU closed the monitor connection"
        try:
            while True:
                chunk = await self._loop.sock_recv(self._sock, 65536)
                if not chunk:
                    break
                buffer += chunk
                if len(buffer) > MAX_MESSAGE:
                    reason = "a QMP message exceeded the size limit"
                    break
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        self._dispatch(json.loads(line))
        except (OSError, ValueError) as exc:
            reason = f"QMP connection failed: {exc}"
        finally:
            self._fail_all(reason)

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "QMP" in message and not self._greeted.done():
            self._greeted.set_result(message["QMP"])
        elif "event" in message:
            for expectation in list(self._expectations):
                expectation.offer(message)
            self._expectations = [e for e in self._expectations if not e.future.done()]
            for listener in list(self._listeners):
                listener(message)
        else:
            future = self._pending.pop(message.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(message)

    def _fail_all(self, reason: str) -> None:
        error = QmpDisconnected(reason)
        waiting = [self._greeted, *self._pending.values(), *(e.future for e in self._expectations)]
        self._pending.clear()
        self._expectations.clear()
        for future in waiting:
            if not future.done():
                future.set_exception(error)
                # marked as seen: a waiter that gave up must not be reported as never retrieved
                future.exception()
        if not self.closed.done():
            self.closed.set_result(reason)

    @property
    def is_open(self) -> bool:
        return not self.closed.done()

    def add_listener(self, listener: EventListener) -> None:
        """Call ``listener`` with every event, in order, on the event loop."""
        self._listeners.append(listener)

    def expect(
        self, names: str | Collection[str], *, where: Callable[[Event], bool] | None = None
    ) -> Expectation:
        """Start listening for an event now; ``await expectation.wait(timeout=…)`` later."""
        expectation = Expectation([names] if isinstance(names, str) else names, where)
        if self.closed.done():
            expectation.future.set_exception(QmpDisconnected(self.closed.result()))
            expectation.future.exception()
        else:
            self._expectations.append(expectation)
        return expectation

    async def execute(
        self,
        command: str,
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        fds: Sequence[int] = (),
    ) -> Any:
        """Run ``command``; its ``return`` value, or ``QmpError`` with QEMU's words."""
        if self.closed.done():
            raise QmpDisconnected(f"{command}: {self.closed.result()}")
        request_id = next(self._ids)
        message: dict[str, Any] = {"execute": command, "id": request_id}
        if arguments:
            message["arguments"] = dict(arguments)
        reply_future: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self._pending[request_id] = reply_future
        data = json.dumps(message).encode() + b"\n"
        bound = self.timeout if timeout is None else timeout
        try:
            async with asyncio.timeout(bound):
                async with self._send_lock:
                    await self._send(data, fds)
        except TimeoutError:
            self._pending.pop(request_id, None)
            raise QmpTimeout(f"{command} could not be sent within {bound:g} s") from None
        except OSError as exc:
            self._pending.pop(request_id, None)
            raise QmpDisconnected(f"{command}: {exc}") from exc
        try:
            reply = await self._await(reply_future, bound, command)
        finally:
            self._pending.pop(request_id, None)
        if "error" in reply:
            error = reply["error"]
            raise QmpError(
                f"{command}: {error.get('desc', error)}", error_class=error.get("class", "")
            )
        return reply.get("return")

    async def _send(self, data: bytes, fds: Sequence[int]) -> None:
        if not fds:
            await self._loop.sock_sendall(self._sock, data)
            return
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds).tobytes())]
        while True:  # the descriptors ride on the first byte that goes out
            try:
                sent = self._sock.sendmsg([data], ancillary)
                break
            except BlockingIOError:
                writable = self._loop.create_future()
                self._loop.add_writer(self._sock, writable.set_result, None)
                try:
                    await writable
                finally:
                    self._loop.remove_writer(self._sock)
        if sent < len(data):
            await self._loop.sock_sendall(self._sock, data[sent:])

    async def close(self) -> None:
        """Close the connection (QEMU keeps running); idempotent."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        self._sock.close()
        self._fail_all("the QMP client was closed")
