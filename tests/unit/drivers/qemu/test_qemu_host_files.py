"""What a guest leaves on the host: a capped console log, a pidfile that says who runs,
and no tool still running once its caller gave up."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from edgefed.drivers.qemu.console import ConsoleLog
from edgefed.drivers.qemu.process import Process, running_pid
from edgefed.drivers.qemu.tools import run_tool
from edgefed.testkit.process import pid_alive
from edgefed.testkit.wait import eventually

GUEST = "6a3c1f3e-8d2b-4f1a-9c77-1e2d3c4b5a69"


def test_the_console_log_rotates_past_its_cap_and_reads_across(tmp_path: Path) -> None:
    log = ConsoleLog(tmp_path / "console.log", cap_bytes=1000)
    with open(log.path, "ab", buffering=0) as qemu:  # QEMU's logfile is opened with O_APPEND
        qemu.write(b"".join(b"line %03d\r\n" % n for n in range(150)))  # 1500 bytes
        assert log.rotate()
        assert log.size() == 0 and log.rotated.stat().st_size == 1500
        qemu.write(b"after the rotation\r\n")
    assert log.path.read_bytes() == b"after the rotation\r\n"  # appended at offset 0
    assert log.output(lines=2) == "line 149\nafter the rotation\n"
    assert not log.rotate()  # under the cap


def test_console_output_is_bounded_and_clean(tmp_path: Path) -> None:
    log = ConsoleLog(tmp_path / "console.log", cap_bytes=10**9)
    log.path.write_bytes(b"x" * 300_000 + b"\x00end \xff\r\n")
    text = log.output()
    assert len(text.encode()) <= 100 * 1024 + 4
    assert text.endswith("end \ufffd\n")
    assert log.output(lines=0) == ""
    log.remove()
    assert log.output() == ""


def test_an_unlocked_pidfile_is_no_running_guest(tmp_path: Path) -> None:
    pidfile = tmp_path / "qemu.pid"
    assert running_pid(pidfile, GUEST) is None
    pidfile.write_text(f"{subprocess.os.getpid()}\n")  # a live process, but no lock held
    assert running_pid(pidfile, GUEST) is None


def hold_pidfile(pidfile: Path, guest_id: str) -> subprocess.Popen[str]:
    """A process that locks ``pidfile`` as QEMU does, with ``-uuid guest_id`` in its argv."""
    code = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
        "fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "os.write(fd, b'%d\\n' % os.getpid())\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(pidfile), "-uuid", guest_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    return holder


async def test_a_locked_pidfile_names_the_guest_only_if_the_uuid_matches(tmp_path: Path) -> None:
    pidfile = tmp_path / "qemu.pid"
    holder = hold_pidfile(pidfile, GUEST)
    try:
        assert running_pid(pidfile, GUEST) == holder.pid
        assert running_pid(pidfile, "00000000-0000-0000-0000-000000000000") is None
        process = Process.attach(holder.pid, GUEST)
        assert process is not None and process.alive()
        assert not await process.wait(0.05)
        holder.stdin.close()  # type: ignore[union-attr]
        assert await process.wait(5)  # the pidfd said so: no polling
        assert not process.alive()
        process.close()
    finally:
        holder.kill()
        holder.wait()
    assert running_pid(pidfile, GUEST) is None  # the lock died with the process


async def test_terminate_escalates_to_sigkill(tmp_path: Path) -> None:
    pidfile = tmp_path / "qemu.pid"
    stubborn = subprocess.Popen(
        [sys.executable, "-c",
         "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
         "print('ready', flush=True); time.sleep(60)", "-uuid", GUEST],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert stubborn.stdout is not None and stubborn.stdout.readline() == "ready\n"
        process = Process.attach(stubborn.pid, GUEST)
        assert process is not None
        await process.terminate(grace=0.2)
        assert stubborn.wait(5) == -9
        process.close()
    finally:
        stubborn.kill()
        stubborn.wait()
    assert not pidfile.exists()


async def test_a_tool_whose_caller_gives_up_is_killed(tmp_path: Path) -> None:
    # a spawn runs qemu-img beside other steps and cancels it when one of them fails
    pidfile = tmp_path / "tool.pid"
    tool = asyncio.create_task(
        run_tool("sh", "-c", f"echo $$ > {pidfile}; exec sleep 60", timeout=120)
    )

    async def started() -> bool:
        return pidfile.exists() and pidfile.read_text().strip() != ""

    await eventually(started, within=10, what="the tool's pid")
    pid = int(pidfile.read_text())
    tool.cancel()
    with pytest.raises(asyncio.CancelledError):
        await tool
    assert not pid_alive(pid)
