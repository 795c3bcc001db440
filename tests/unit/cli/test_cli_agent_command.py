"""``edgefed host agent``: where the one-time enrollment token comes from (the option,
else the file, else ``EDGEFED_ENROLL_TOKEN``; a file given but gone means "enrolled
before": the environment is not read then), and what a host that cannot enroll is
told."""

from __future__ import annotations

import argparse
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefed.cli.agent_command import _token, run_agent
from edgefed.cli.main import build_parser


def agent_args(*extra: str) -> argparse.Namespace:
    return build_parser().parse_args(["host", "agent", "--site", "http://berlin.test", *extra])


def test_the_option_wins_over_the_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEFED_ENROLL_TOKEN", "from-env")
    (tmp_path / "token").write_text("from-file\n")
    args = agent_args(
        "--enroll-token", "from-option", "--enroll-token-file", str(tmp_path / "token")
    )
    assert _token(args) == "from-option"


def test_the_file_wins_over_the_environment_and_is_read_stripped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEFED_ENROLL_TOKEN", "from-env")
    (tmp_path / "token").write_text("  from-file\n")
    assert _token(agent_args("--enroll-token-file", str(tmp_path / "token"))) == "from-file"


@pytest.mark.parametrize("content", [None, "", "\n"])
def test_a_file_gone_or_empty_means_no_token_even_with_one_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str | None
) -> None:
    # The site removes the file once its agent enrolled: the agent runs on its credential.
    monkeypatch.setenv("EDGEFED_ENROLL_TOKEN", "stale")
    if content is not None:
        (tmp_path / "token").write_text(content)
    assert _token(agent_args("--enroll-token-file", str(tmp_path / "token"))) is None


def test_without_option_or_file_the_environment_gives_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEFED_ENROLL_TOKEN", "from-env")
    assert _token(agent_args()) == "from-env"
    monkeypatch.setenv("EDGEFED_ENROLL_TOKEN", "")
    assert _token(agent_args()) is None


@pytest.fixture
def sigterm_kept() -> Iterator[None]:
    """The agent command installs its SIGTERM handler; the test process gets its own back."""
    before = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.usefixtures("sigterm_kept")
def test_a_host_never_enrolled_and_without_a_token_is_told_what_to_give(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pid_file = tmp_path / "agent.pid"
    args = agent_args("--state-dir", str(tmp_path / "state"), "--pid-file", str(pid_file))
    assert run_agent(args) == 1
    assert "edgefed: this host is not enrolled: give --enroll-token" in capsys.readouterr().err
    assert pid_file.read_text() == f"{os.getpid()}\n"
