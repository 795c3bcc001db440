"""The all-in-one site's own host agent, started and watched by ``edgefed site serve``.

With the qemu driver (and ``local_agent``, the default), the site runs its guests on
the machine it is on, through a host agent like any other host's: a separate process
(``edgefed host agent --guests``), so that killing or restarting one leaves the other
and the guests running. The site prepared the host and a one-time token at start
(services/inventory/local_agent.py); the agent keeps its credential in
``<data_dir>/agent``. An agent that exits is started again (after a pause that grows
to ``RESTART_BACKOFF[-1]``); the agent dies with the site (``PR_SET_PDEATHSIG``), so a
site killed with -9 leaves no second agent behind when it comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import signal
import sys

from edgefed.core.settings import SiteSettings

log = logging.getLogger("edgefed.local_agent")

RESTART_BACKOFF = (0.5, 1.0, 2.0, 5.0)
# An agent that ran this long before it exited starts again without waiting.
HEALTHY_SECONDS = 30.0
_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:
    """In the agent's process before it runs: die with the site."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def agent_argv(settings: SiteSettings) -> list[str]:
    agent_dir = settings.data_dir / "agent"
    interval = max(0.2, min(10.0, settings.host_heartbeat_timeout_seconds / 3))
    return [
        sys.executable,
        "-m",
        "edgefed.cli.main",
        "host",
        "agent",
        "--guests",
        "--site",
        f"http://{settings.host}:{settings.port}",
        "--hostname",
        settings.local_agent_host,
        "--state-dir",
        str(agent_dir),
        "--enroll-token-file",
        str(agent_dir / "enroll-token"),
        "--pid-file",
        str(agent_dir / "agent.pid"),
        "--hostnet-dir",
        settings.agent_hostnet_dir,
        "--accel",
        settings.agent_accel,
        "--interval",
        f"{interval:g}",
        "--poll-wait",
        f"{settings.agent_poll_wait_seconds:g}",
    ]


class LocalAgent:
    """Runs the agent process and starts it again when it exits, until ``stop``."""

    def __init__(self, settings: SiteSettings) -> None:
        self.argv = agent_argv(settings)
        self.process: asyncio.subprocess.Process | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._supervise(), name="local-agent")

    async def _supervise(self) -> None:
        failures = 0
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            started = loop.time()
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, preexec_fn=_child_setup, stdin=asyncio.subprocess.DEVNULL
            )
            log.info("local host agent started (pid %s)", self.process.pid)
            code = await self.process.wait()
            if self._stopping.is_set():
                return
            failures = 0 if loop.time() - started > HEALTHY_SECONDS else failures + 1
            delay = RESTART_BACKOFF[min(failures, len(RESTART_BACKOFF) - 1)]
            log.warning("local host agent exited (%s); starting it again in %ss", code, delay)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()

    async def stop(self, *, timeout: float = 15.0) -> None:
        """SIGTERM the agent (its guests keep running) and wait for it."""
        self._stopping.set()
        process = self.process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
