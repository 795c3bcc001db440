"""Real host agents and the ``edgefed host`` CLI, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgefed.testkit.process import SiteProcess


def edgefed(site: SiteProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OS_AUTH_URL=site.auth_url, OS_PASSWORD=site.password)
    return subprocess.run(
        [sys.executable, "-m", "edgefed.cli.main", "host", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def host_json(site: SiteProcess, name: str) -> dict[str, Any]:
    out = edgefed(site, "show", name, "-f", "json")
    assert out.returncode == 0, out.stderr
    host: dict[str, Any] = json.loads(out.stdout)
    return host


class Agent:
    def __init__(self, site: SiteProcess, token: str, hostname: str, state_dir: Path):
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edgefed.cli.main",
                "host",
                "agent",
                "--site",
                site.url,
                "--enroll-token",
                token,
                "--hostname",
                hostname,
                "--state-dir",
                str(state_dir),
                "--interval",
                "0.3",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.ready = threading.Event()
        self.lines: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.startswith("EDGEFED AGENT READY"):
                self.ready.set()
        self.ready.set()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)


def wait_for(condition: Callable[[], bool], *, deadline: float, what: str) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
