"""Two real host agents join a real site through the ``edgefed host`` CLI; their
hardware appears; killing one marks its host down within the heartbeat timeout."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator

import pytest

from edgefed.testkit.agents import Agent, edgefed, host_json, wait_for
from edgefed.testkit.process import SiteProcess

pytestmark = pytest.mark.e2e

TIMEOUT = 2.0


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteProcess]:
    proc = SiteProcess(
        name="Berlin",
        data_dir=tmp_path_factory.mktemp("berlin"),
        extra_config=f"host_heartbeat_timeout_seconds = {TIMEOUT}\n",
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


def test_two_agents_join_report_hardware_and_a_killed_one_goes_down(site, tmp_path):
    tokens = []
    for name in ("edge-a", "edge-b"):
        out = edgefed(site, "enroll-token", "--hostname", name, "--personality", "edgeworker")
        assert out.returncode == 0, out.stderr
        tokens.append(out.stdout.strip())
    agents = [
        Agent(site, tokens[0], "edge-a", tmp_path / "a"),
        Agent(site, tokens[1], "edge-b", tmp_path / "b"),
    ]
    try:
        for agent in agents:
            assert agent.ready.wait(30), agent.proc.stderr.read() if agent.proc.stderr else ""
            assert agent.proc.poll() is None
        listed = edgefed(site, "list", "-f", "json")
        hosts = {h["hostname"]: h for h in json.loads(listed.stdout)}
        assert set(hosts) == {"edge-a", "edge-b"}
        for host in hosts.values():
            assert host["personality"] == "edgeworker"
            assert host["availability"] == "available"
            assert host["hardware"]["cpus"] >= 1 and host["hardware"]["memory_mb"] > 0
            assert host["hardware"]["os"]["id"]
            assert host["capacity"]["vcpus"] == host["hardware"]["cpus"]
        # The one-time token cannot enroll a second time.
        again = Agent(site, tokens[0], "edge-a", tmp_path / "c")
        again.proc.wait(timeout=30)
        assert again.proc.returncode == 1
        assert "already been used" in (again.proc.stderr.read() if again.proc.stderr else "")

        agents[0].stop(signal.SIGKILL)
        killed_at = time.monotonic()
        wait_for(
            lambda: host_json(site, "edge-a")["availability"] == "down",
            deadline=TIMEOUT * 3 + 5,
            what="edge-a to be marked down",
        )
        assert time.monotonic() - killed_at < TIMEOUT * 3 + 5
        assert host_json(site, "edge-b")["availability"] == "available"

        locked = edgefed(site, "unlock", "edge-b")
        assert locked.returncode == 0, locked.stderr
        locked = edgefed(site, "lock", "edge-b", "-f", "json")
        assert json.loads(locked.stdout)["administrative"] == "locked"
        refused = edgefed(site, "upgrade", "edge-b", "--load", "2.0")
        assert refused.returncode == 1
        assert "not supported on edgeworker" in refused.stderr
    finally:
        for agent in agents:
            agent.stop()
