"""The all-in-one site's own host agent as ``edgefed site serve`` runs it: the command
line it starts names this site and the agent's files; an agent that exits is started
again after a pause that grows to the last step of the backoff; ``stop`` ends the
agent with SIGTERM (SIGKILL if it will not go) and starts no other."""

from __future__ import annotations

import logging
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from edgefed.cli import local_agent
from edgefed.cli.local_agent import LocalAgent, agent_argv
from edgefed.testkit.inprocess import site_settings
from edgefed.testkit.wait import eventually


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_the_agent_is_told_this_sites_address_and_its_own_files(tmp_path: Path) -> None:
    settings = site_settings(tmp_path / "site", compute_driver="qemu", port=7001,
                             agent_accel="tcg", agent_poll_wait_seconds=2.5)  # fmt: skip
    argv = agent_argv(settings)
    assert argv[:6] == [sys.executable, "-m", "edgefed.cli.main", "host", "agent", "--guests"]
    agent_dir = tmp_path / "site" / "agent"
    assert option(argv, "--site") == f"http://{settings.host}:7001"
    assert option(argv, "--hostname") == "berlin-local"
    assert option(argv, "--state-dir") == str(agent_dir)
    assert option(argv, "--enroll-token-file") == str(agent_dir / "enroll-token")
    assert option(argv, "--pid-file") == str(agent_dir / "agent.pid")
    assert option(argv, "--accel") == "tcg"
    assert option(argv, "--poll-wait") == "2.5"


@pytest.mark.parametrize(("timeout", "interval"), [(30.0, "10"), (9.0, "3"), (0.3, "0.2")])
def test_the_heartbeat_is_a_third_of_the_timeout_within_bounds(
    tmp_path: Path, timeout: float, interval: str
) -> None:
    settings = site_settings(tmp_path, host_heartbeat_timeout_seconds=timeout)
    assert option(agent_argv(settings), "--interval") == interval


def script(tmp_path: Path, then: str, *, setup: str = "") -> list[str]:
    """An agent stand-in: a Python program that runs ``setup``, notes its start in
    ``starts``, then runs ``then``."""
    note = f"open({str(tmp_path / 'starts')!r}, 'a').write('start\\n')"
    return [sys.executable, "-c", f"import signal, sys, time\n{setup}\n{note}\n{then}"]


FOREVER = "while True: time.sleep(1)"


def starts(tmp_path: Path) -> int:
    path = tmp_path / "starts"
    return len(path.read_text().splitlines()) if path.exists() else 0


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[LocalAgent]:
    supervised = LocalAgent(site_settings(tmp_path / "site"))
    try:
        yield supervised
    finally:
        await supervised.stop(timeout=5)


@pytest.mark.parametrize(
    ("healthy_seconds", "pauses"),
    [
        # Exits right after starting are failures: the pause grows, then stays at the last.
        (local_agent.HEALTHY_SECONDS, ["0.02", "0.05", "0.05"]),
        # An agent that ran long enough exited healthy: the first pause again.
        (0.0, ["0.01", "0.01", "0.01"]),
    ],
)
async def test_an_agent_that_exits_is_started_again_after_a_pause(
    tmp_path: Path,
    agent: LocalAgent,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    healthy_seconds: float,
    pauses: list[str],
) -> None:
    monkeypatch.setattr(local_agent, "RESTART_BACKOFF", (0.01, 0.02, 0.05))
    monkeypatch.setattr(local_agent, "HEALTHY_SECONDS", healthy_seconds)
    agent.argv = script(tmp_path, "sys.exit(3)")
    with caplog.at_level(logging.WARNING, logger="edgefed.local_agent"):
        agent.start()

        async def restarted() -> bool:
            return starts(tmp_path) >= 4

        await eventually(restarted, within=20, what="the agent started four times")
    announced = r"local host agent exited \(3\); starting it again in (\S+)s"
    found = (re.fullmatch(announced, r.getMessage()) for r in caplog.records)
    assert [m.group(1) for m in found if m][:3] == pauses


async def test_stop_ends_the_agent_with_sigterm_and_starts_no_other(
    tmp_path: Path, agent: LocalAgent
) -> None:
    got = tmp_path / "got"
    agent.argv = script(
        tmp_path,
        FOREVER,
        setup=f"signal.signal(signal.SIGTERM, lambda *_: (open({str(got)!r}, 'w').write('TERM'), "
        "sys.exit(0)))",
    )
    agent.start()

    async def running() -> bool:
        return starts(tmp_path) == 1

    await eventually(running, within=20, what="the agent started")
    await agent.stop(timeout=10)
    assert got.read_text() == "TERM"
    assert agent.process is not None and agent.process.returncode == 0
    assert starts(tmp_path) == 1


async def test_an_agent_that_ignores_sigterm_is_killed(tmp_path: Path, agent: LocalAgent) -> None:
    agent.argv = script(tmp_path, FOREVER, setup="signal.signal(signal.SIGTERM, signal.SIG_IGN)")
    agent.start()

    async def running() -> bool:
        return starts(tmp_path) == 1

    await eventually(running, within=20, what="the agent started")
    await agent.stop(timeout=0.5)
    assert agent.process is not None and agent.process.returncode == -signal.SIGKILL
    assert starts(tmp_path) == 1
