"""The host agent against a fake site: it enrolls once and keeps its credential, beats
with the hardware report only when it changed, re-enrolls when the site forgets it,
outlives a flaky link, and stops when told."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefed.agent import state
from edgefed.agent.runner import CREDENTIAL_HEADER, AgentConfig, AgentError, HostAgent

SITE = "http://berlin.test"


class FakeSite:
    """The site's agent API: enroll with a token, heartbeat with a credential."""

    def __init__(self) -> None:
        self.tokens = {"good-token"}
        self.credentials: set[str] = set()
        self.enrollments: list[dict[str, Any]] = []
        self.beats: list[dict[str, Any]] = []
        self.transport_failures = 0  # the next requests that never arrive
        self.beat_status: int | None = None
        self.on_beat: Any = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.transport_failures:
            self.transport_failures -= 1
            raise httpx.ConnectError("no route to host", request=request)
        body = json.loads(request.content)
        if request.url.path == "/edge/v1/hosts/agent/enroll":
            self.enrollments.append(body)
            if body["enrollment_token"] not in self.tokens:
                return httpx.Response(401, json={"error": {"message": "Invalid token"}})
            self.tokens.discard(body["enrollment_token"])
            credential = f"cred-{len(self.enrollments)}"
            self.credentials.add(credential)
            host = {"id": "h1", "hostname": body["hostname"]}
            return httpx.Response(201, json={"host": host, "credential": credential})
        assert request.url.path == "/edge/v1/hosts/agent/heartbeat"
        self.beats.append(body)
        if self.on_beat is not None:
            self.on_beat(len(self.beats))
        if self.beat_status is not None:
            return httpx.Response(self.beat_status, json={"error": {"message": "on fire"}})
        if request.headers.get(CREDENTIAL_HEADER) not in self.credentials:
            return httpx.Response(401, json={"error": {"message": "unknown credential"}})
        return httpx.Response(200, json={})


class Hardware:
    """The machine's report, changed when the test says."""

    def __init__(self) -> None:
        self.report: dict[str, Any] = {"cpus": 4, "memory_mb": 8192}

    def __call__(self) -> dict[str, Any]:
        return dict(self.report)


def agent_for(
    site: FakeSite, tmp_path: Path, *, token: str | None = "good-token", **config: Any
) -> tuple[HostAgent, Hardware]:
    hardware = Hardware()
    values: dict[str, Any] = {
        "site_url": SITE + "/",
        "state_dir": tmp_path / "agent",
        "enroll_token": token,
        "hostname": "Edge-1",
        "interval_seconds": 0.0,
        "enroll_backoff": (0.0, 0.0),
    }
    values.update(config)
    client = httpx.Client(transport=httpx.MockTransport(site))
    return HostAgent(AgentConfig(**values), client=client, collect=hardware), hardware


def test_the_first_start_enrolls_and_keeps_the_credential_privately(tmp_path: Path) -> None:
    site = FakeSite()
    agent, _ = agent_for(site, tmp_path, mgmt_ip="192.168.204.7")
    enrolled = agent.start()
    [sent] = site.enrollments
    assert sent == {
        "enrollment_token": "good-token",
        "hostname": "edge-1",  # host names are lower-case
        "hardware": {"cpus": 4, "memory_mb": 8192},
        "mgmt_ip": "192.168.204.7",
    }
    assert (enrolled.site_url, enrolled.host_id, enrolled.credential) == (SITE, "h1", "cred-1")
    assert state.load(tmp_path / "agent") == enrolled
    assert stat.S_IMODE((tmp_path / "agent" / state.STATE_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "agent").stat().st_mode) == 0o700
    assert site.beats == []


def test_a_restart_reuses_the_credential_without_a_token(tmp_path: Path) -> None:
    site = FakeSite()
    agent_for(site, tmp_path)[0].start()
    again, _ = agent_for(site, tmp_path, token=None)
    assert again.start().credential == "cred-1"
    assert len(site.enrollments) == 1
    # A new process does not know what the site holds: its first beat tells it.
    assert site.beats == [{"hardware": {"cpus": 4, "memory_mb": 8192}}]


def test_a_forgotten_credential_means_enrolling_again(tmp_path: Path) -> None:
    site = FakeSite()
    agent_for(site, tmp_path)[0].start()
    site.credentials.clear()  # the host was deleted and added again at the site
    site.tokens.add("second-token")
    again, _ = agent_for(site, tmp_path, token="second-token")
    assert again.start().credential == "cred-2"
    assert state.load(tmp_path / "agent").credential == "cred-2"  # type: ignore[union-attr]


def test_a_credential_for_another_site_is_not_presented(tmp_path: Path) -> None:
    site = FakeSite()
    state.save(tmp_path / "agent", state.AgentState("http://paris.test", "hx", "edge-1", "old"))
    agent, _ = agent_for(site, tmp_path)
    assert agent.start().credential == "cred-1"
    assert site.beats == []


def test_without_a_token_or_a_credential_it_says_what_to_give(tmp_path: Path) -> None:
    agent, _ = agent_for(FakeSite(), tmp_path, token=None)
    with pytest.raises(AgentError, match="give --enroll-token"):
        agent.start()


def test_a_refused_enrollment_names_the_sites_reason(tmp_path: Path) -> None:
    agent, _ = agent_for(FakeSite(), tmp_path, token="stolen")
    with pytest.raises(AgentError, match=r"enrollment refused \(401\): Invalid token"):
        agent.start()
    assert state.load(tmp_path / "agent") is None


def test_enrollment_outlives_a_flaky_link_for_a_while(tmp_path: Path) -> None:
    site = FakeSite()
    site.transport_failures = 2  # both retries of the backoff fail, the last try works
    agent, _ = agent_for(site, tmp_path)
    assert agent.start().credential == "cred-1"
    site = FakeSite()
    site.transport_failures = 3
    agent, _ = agent_for(site, tmp_path / "other")
    with pytest.raises(httpx.ConnectError):
        agent.start()


def test_the_hardware_report_travels_only_when_it_changed(tmp_path: Path) -> None:
    site = FakeSite()
    agent, hardware = agent_for(site, tmp_path)
    agent.start()
    assert agent.heartbeat()
    hardware.report["memory_mb"] = 16384
    assert agent.heartbeat()
    assert agent.heartbeat()
    assert site.beats == [{}, {"hardware": {"cpus": 4, "memory_mb": 16384}}, {}]


def test_a_change_the_site_did_not_accept_is_sent_again(tmp_path: Path) -> None:
    site = FakeSite()
    agent, hardware = agent_for(site, tmp_path)
    agent.start()
    hardware.report["cpus"] = 8
    site.beat_status = 503
    with pytest.raises(AgentError, match=r"heartbeat refused \(503\): on fire"):
        agent.heartbeat()
    site.beat_status = None
    agent.heartbeat()
    assert site.beats[-1] == {"hardware": {"cpus": 8, "memory_mb": 8192}}


def test_run_beats_until_stopped_and_rides_out_a_lost_beat(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = FakeSite()
    agent, _ = agent_for(site, tmp_path)
    ready: list[state.AgentState] = []

    def on_beat(count: int) -> None:
        if count == 1:
            site.transport_failures = 1  # the second beat is lost on the way
        if count == 3:
            agent.stop()

    site.on_beat = on_beat
    with caplog.at_level(logging.WARNING, logger="edgefed.agent"):
        agent.run(on_ready=ready.append)
    assert [s.credential for s in ready] == ["cred-1"]
    assert len(site.beats) == 3
    assert "heartbeat failed, retrying" in caplog.text


def test_run_ends_when_the_site_stops_accepting_the_host(tmp_path: Path) -> None:
    site = FakeSite()
    agent, _ = agent_for(site, tmp_path)
    site.on_beat = lambda count: site.credentials.clear()
    with pytest.raises(AgentError, match="no longer accepts this host's credential"):
        agent.run()


def test_a_stopped_agent_does_not_beat_after_starting(tmp_path: Path) -> None:
    site = FakeSite()
    agent, _ = agent_for(site, tmp_path, interval_seconds=3600.0)
    agent.stop()
    agent.run()
    assert site.beats == []
    assert len(site.enrollments) == 1


@pytest.mark.parametrize("content", ["", "{not json", '{"site_url": "x"}', "[]"])
def test_a_damaged_state_file_is_no_state(tmp_path: Path, content: str) -> None:
    (tmp_path / state.STATE_FILE).write_text(content)
    assert state.load(tmp_path) is None
    assert state.load(tmp_path / "missing") is None


def test_saving_replaces_the_state_whole(tmp_path: Path) -> None:
    first = state.AgentState(SITE, "h1", "edge-1", "cred-1")
    second = state.AgentState(SITE, "h1", "edge-1", "cred-2")
    state.save(tmp_path / "s", first)
    state.save(tmp_path / "s", second)
    assert state.load(tmp_path / "s") == second
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [state.STATE_FILE]
