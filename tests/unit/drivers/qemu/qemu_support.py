"""Helpers of the QEMU driver's tests: skip markers, a guest's console, process checks."""

from __future__ import annotations

import asyncio
import shutil
import socket
import time
from pathlib import Path

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
        return self.hv.console_output(self.guest_id)

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

    async def type(self, line: str) -> None:
        """Type a line on the guest's serial shell (its output lands in the log)."""
        path = self.hv.layout.guest(self.guest_id).serial_socket
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.setblocking(False)
            await asyncio.wait_for(loop.sock_connect(sock, str(path)), 5)
            await loop.sock_sendall(sock, b"\n" + line.encode() + b"\n")
            await asyncio.sleep(0)  # the bytes are QEMU's once sent; closing is fine

    def boot_count(self) -> int:
        counts = [
            int(line.rsplit("boot-count=", 1)[1].split()[0])
            for line in self.text().splitlines()
            if "boot-count=" in line
        ]
        return counts[-1] if counts else 0


def pid_alive(pid: int) -> bool:
    """Whether a process runs (a zombie awaiting its reaper counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
