"""The guest's serial console log: kept while nobody watches, capped, read from the end.

QEMU writes everything the guest sends to its serial port into ``console.log`` itself
(the chardev's ``logfile``, opened with O_APPEND), so the log goes on while the agent
is down. QEMU never rotates it, so the library does (``rotate``, from the
hypervisor's maintenance loop and before each read): past the cap the log's content
moves to ``console.log.1`` and the log is emptied in place (copy then truncate, as
logrotate's ``copytruncate``; QEMU's O_APPEND writes then continue at offset 0). A line
written between the copy and the truncation can be lost; nothing else is. At most
twice the cap are kept per guest.

``output`` is what ``os-getConsoleOutput`` returns: the last ``lines`` lines, at most
100 KiB as Nova's libvirt driver gives.

The same serial port is a unix socket (``serial.sock``) for an interactive client,
which must read while connected: QEMU's UART waits for the socket, so a client that
only writes stalls the guest's console once the socket's buffer is full (a few hundred
one-byte writes), and the guest's kernel then waits ~10 ms per character of its own.
With nobody connected, QEMU only logs.
"""

from __future__ import annotations

import os
from pathlib import Path

MAX_OUTPUT_BYTES = 100 * 1024
DEFAULT_CAP_BYTES = 1024 * 1024


class ConsoleLog:
    def __init__(self, path: Path, *, cap_bytes: int = DEFAULT_CAP_BYTES) -> None:
        self.path = path
        self.rotated = path.with_name(path.name + ".1")
        self.cap_bytes = cap_bytes

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def rotate(self) -> bool:
        """Move the log aside if it passed the cap; whether it did."""
        if self.size() <= self.cap_bytes:
            return False
        partial = self.rotated.with_name(self.rotated.name + ".partial")
        with open(self.path, "r+b") as log:
            data = log.read()
            partial.write_bytes(data)
            os.replace(partial, self.rotated)
            log.truncate(0)
        return True

    def read_tail(self, limit: int = MAX_OUTPUT_BYTES) -> bytes:
        """The last ``limit`` bytes across the rotated log and the current one."""
        self.rotate()
        chunks: list[bytes] = []
        wanted = limit
        for path in (self.path, self.rotated):
            if wanted <= 0:
                break
            try:
                with open(path, "rb") as log:
                    log.seek(0, os.SEEK_END)
                    size = log.tell()
                    log.seek(max(0, size - wanted))
                    chunk = log.read(wanted)
            except OSError:
                continue
            chunks.insert(0, chunk)
            wanted -= len(chunk)
        return b"".join(chunks)

    def output(self, *, lines: int | None = None) -> str:
        """The console as text (``lines``: only the last ones), as Nova shows it."""
        text = self.read_tail().decode("utf-8", errors="replace").replace("\r\n", "\n")
        text = text.replace("\x00", "")
        if lines is None:
            return text
        if lines <= 0:
            return ""
        kept = text.splitlines(keepends=True)[-lines:]
        return "".join(kept)

    def remove(self) -> None:
        for path in (self.path, self.rotated):
            path.unlink(missing_ok=True)
