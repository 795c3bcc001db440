"""Helpers of the QEMU driver's tests: skip markers, a guest's console, process checks."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import time

import pytest

from edgefed.drivers.qemu import QemuHypervisor

needs_qemu = pytest.mark.skipif(
    shutil.which("qemu-system-x86_64") is None,
    reason="qemu-system-x86_64 is not installed (make system-deps installs it)",
)
needs_qemu_img = pytest.mark.skipif(
    shutil.which("qemu-img") is None,
    reason="qemu-img is not installed (make system-deps installs qemu-utils)",
)


class Console:
    """A guest's serial console as a test reads and types on it."""

    def __init__(self, hv: QemuHypervisor, guest_id: str) -> None:
        self.hv = hv
        self.guest_id = guest_id

    def text(self) -> str:
        """Everything the guest wrote, rotated part included (console_output gives only
        the last 100 KiB, too little to count markers over several boots)."""
        log = self.hv.layout.guest(self.guest_id).console_log
        parts = []
        for path in (log.with_name(log.name + ".1"), log):
            try:
                parts.append(path.read_bytes().decode(errors="replace"))
            except FileNotFoundError:
                continue
        return "".join(parts)

    def count(self, marker: str) -> int:
        return self.text().count(marker)

    async def wait_for(self, marker: str, *, count: int = 1, within: float = 90.0) -> float:
        """Seconds until ``marker`` shows ``count`` times (bounded; the console is polled)."""
        started = time.monotonic()
        while time.monotonic() - started < within:
            if self.count(marker) >= count:
                return time.monotonic() - started
            await asyncio.sleep(0.05)
        tail = self.hv.console_output(self.guest_id, lines=30)
        raise AssertionError(f"{marker!r} x{count} not on the console within {within} s:\n{tail}")

    async def type(
        self, line: str, *, until: str | None = None, within: float = 45.0, attempts: int = 3
    ) -> None:
        """Type a line on the guest's serial shell, then wait until ``until`` shows once
        more than before (by default the line's own echo: the guest took every byte).

        While connected, the helper reads what the guest sends, as a terminal does: a
        client of the serial socket that does not read stalls the guest's UART once the
        socket's buffer is full (a few hundred one-byte writes), and the kernel then
        spends ~10 ms per character of its own messages waiting for the UART and drops
        some. What is read is thrown away: QEMU logs it to console.log all the same.

        The connection stays open until the line is seen: QEMU drops what the UART has
        not taken (16 bytes at a time) when the client goes away. A line typed before
        the shell reads its terminal is lost, so it is typed again, up to ``attempts``
        times: commands typed here must bear running twice.
        """
        expected = until or line
        before = self.count(expected)
        path = self.hv.layout.guest(self.guest_id).serial_socket
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.setblocking(False)
            await asyncio.wait_for(loop.sock_connect(sock, str(path)), 5)
            reader = asyncio.create_task(_drain(loop, sock))
            try:
                for attempt in range(1, attempts + 1):
                    await loop.sock_sendall(sock, b"\n" + line.encode() + b"\n")
                    try:
                        await self.wait_for(expected, count=before + 1, within=within / attempts)
                        return
                    except AssertionError:
                        if attempt == attempts:
                            raise
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader

    def boot_count(self) -> int:
        counts = [
            int(line.rsplit("boot-count=", 1)[1].split()[0])
            for line in self.text().splitlines()
            if "boot-count=" in line
        ]
        return counts[-1] if counts else 0


# The tap of the ``netns`` fixture (conftest.py), 192.0.2.1/24 on the namespace side.
NETNS_TAP = "tap-q0"


async def _drain(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    """Read and drop what the guest writes until it hangs up (or the task is cancelled)."""
    while await loop.sock_recv(sock, 65536):
        pass
