"""The QEMU process: start it detached, know whether it is still ours, end it.

QEMU runs with ``-daemonize``: the command returns once the machine is set up (or
fails with QEMU's own message, which lands in ``qemu.log``), and the guest is no child
of the library's owner, so an agent that dies or restarts leaves it running and no
zombie behind. Two facts then identify a running guest without any record in memory:

- its pidfile is locked (QEMU holds an exclusive ``lockf`` on ``qemu.pid`` while it
  runs; the lock dies with the process, so a stale pidfile says nothing), and
- ``/proc/<pid>/cmdline`` carries ``-uuid <guest id>`` (a recycled pid would not).

Waiting for the end uses a pidfd: an event, bounded, and immune to pid reuse; signals
go through the same pidfd once the identity is checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import os
import select
import signal
from collections.abc import Sequence
from pathlib import Path

from edgefed.drivers.qemu.errors import LaunchFailed


def netns_prefix(netns: str | None) -> list[str]:
    """QEMU opens the guest's taps by name, so it must run where they are."""
    return ["ip", "netns", "exec", netns] if netns else []


async def launch(argv: Sequence[str], *, log: Path, timeout: float) -> None:
    """Run a ``-daemonize`` QEMU to the point where the guest runs, or ``LaunchFailed``."""
    with open(log, "ab") as output:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=output, stderr=output
            )
        except FileNotFoundError as exc:
            raise LaunchFailed(f"{argv[0]} is not installed on this host") from exc
    try:
        status = await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise LaunchFailed(f"QEMU did not finish starting within {timeout:g} s") from None
    if status != 0:
        said = _tail(log)
        raise LaunchFailed(f"QEMU could not start the guest (exit status {status}): {said}")


def _tail(log: Path, limit: int = 800) -> str:
    try:
        with open(log, "rb") as output:
            output.seek(0, os.SEEK_END)
            output.seek(max(0, output.tell() - limit))
            text = output.read().decode(errors="replace").strip()
    except OSError:
        return "no output"
    return text.splitlines()[-1] if text else "no output"


def cmdline_has(pid: int, guest_id: str) -> bool:
    """Whether process ``pid`` is the QEMU of ``guest_id`` (its ``-uuid`` argument)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    wanted = guest_id.encode()
    return any(a == b"-uuid" and b == wanted for a, b in itertools.pairwise(argv))


def running_pid(pidfile: Path, guest_id: str) -> int | None:
    """The pid of the guest's QEMU if it is running, else None (see the module doc)."""
    try:
        fd = os.open(pidfile, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            # a shared lock is refused only while someone holds QEMU's exclusive lock
            fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            pass
        else:
            return None  # nobody holds it: QEMU is gone (closing the fd drops our lock)
        text = os.read(fd, 32).decode(errors="replace").strip()
    finally:
        os.close(fd)
    try:
        pid = int(text)
    except ValueError:
        return None
    return pid if cmdline_has(pid, guest_id) else None


class Process:
    """A running QEMU, held by a pidfd: signals reach it and no other process.

    A pidfd turns readable when the process ends, even as a zombie its parent (init,
    after -daemonize) has not reaped yet, which a signal 0 would still call alive.
    """

    def __init__(self, pid: int, pidfd: int) -> None:
        self.pid = pid
        self._pidfd = pidfd
        self._ended: asyncio.Future[None] | None = None

    @classmethod
    def attach(cls, pid: int, guest_id: str) -> Process | None:
        try:
            pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            return None
        if not cmdline_has(pid, guest_id):  # checked after the pidfd pins the process
            os.close(pidfd)
            return None
        return cls(pid, pidfd)

    def alive(self) -> bool:
        if self._pidfd < 0 or (self._ended is not None and self._ended.done()):
            return False
        readable, _, _ = select.select([self._pidfd], [], [], 0)
        return not readable

    def send(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, OSError):
            if self._pidfd >= 0:
                signal.pidfd_send_signal(self._pidfd, signum)

    def _end_future(self) -> asyncio.Future[None]:
        """One future for every waiter: a file descriptor has one reader in asyncio."""
        if self._ended is None:
            loop = asyncio.get_running_loop()
            ended: asyncio.Future[None] = loop.create_future()
            pidfd = self._pidfd

            def on_exit() -> None:
                loop.remove_reader(pidfd)
                if not ended.done():
                    ended.set_result(None)

            loop.add_reader(pidfd, on_exit)
            self._ended = ended
        return self._ended

    async def wait(self, timeout: float) -> bool:
        """Whether the process ended within ``timeout``."""
        if not self.alive():
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self._end_future()), timeout)
        except TimeoutError:
            return False
        return True

    async def terminate(self, *, grace: float) -> None:
        """SIGTERM, then SIGKILL if it is still there after ``grace`` seconds."""
        self.send(signal.SIGTERM)
        if not await self.wait(grace):
            self.send(signal.SIGKILL)
            await self.wait(grace)

    def close(self) -> None:
        if self._pidfd >= 0:
            if self._ended is not None and not self._ended.done():
                with contextlib.suppress(RuntimeError):
                    asyncio.get_running_loop().remove_reader(self._pidfd)
                self._ended.cancel()
            os.close(self._pidfd)
            self._pidfd = -1
