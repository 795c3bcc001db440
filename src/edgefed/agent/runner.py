"""The agent's loop: enroll once with a one-time token, then heartbeat until stopped.

On start the agent reuses the credential in its state directory when it has one for
this site; it enrolls (and saves the new credential) only when it has none or the site
refuses it. Each heartbeat carries the hardware report when it changed since the last
one the site accepted. Network errors are retried on the next beat: an agent outlives
a site restart.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from edgefed.agent import hardware, state

log = logging.getLogger("edgefed.agent")

HOSTS_PATH = "/edge/v1/hosts"
CREDENTIAL_HEADER = "X-Host-Credential"
READY_PREFIX = "EDGEFED AGENT READY"
# Seconds between enrollment attempts while the site does not answer (then one last try).
ENROLL_BACKOFF = (1.0, 2.0, 4.0, 8.0, 15.0)


class AgentError(Exception):
    """The site refused the agent for good (a bad or used token, a rule it breaks)."""


@dataclass(frozen=True, slots=True)
class AgentConfig:
    site_url: str
    state_dir: Path
    enroll_token: str | None = None
    hostname: str | None = None
    mgmt_ip: str | None = None
    interval_seconds: float = 10.0
    # Seconds between enrollment attempts while the site does not answer.
    enroll_backoff: tuple[float, ...] = ENROLL_BACKOFF


def _error_message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:300]


class HostAgent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        client: httpx.Client | None = None,
        collect: Callable[[], dict[str, Any]] = hardware.collect,
    ):
        self.config = config
        self.site_url = config.site_url.rstrip("/")
        self.client = client or httpx.Client(timeout=httpx.Timeout(10.0, connect=5.0))
        self.collect = collect
        self.stopping = threading.Event()
        self.state: state.AgentState | None = None
        self._last_sent: dict[str, Any] | None = None

    @property
    def hostname(self) -> str:
        return (self.config.hostname or socket.gethostname()).lower()

    def enroll(self) -> state.AgentState:
        if not self.config.enroll_token:
            raise AgentError("this host is not enrolled: give --enroll-token")
        report = self.collect()
        body: dict[str, Any] = {
            "enrollment_token": self.config.enroll_token,
            "hostname": self.hostname,
            "hardware": report,
        }
        if self.config.mgmt_ip:
            body["mgmt_ip"] = self.config.mgmt_ip
        r = self._post_with_retries(f"{self.site_url}{HOSTS_PATH}/agent/enroll", body)
        if r.status_code != 201:
            raise AgentError(f"enrollment refused ({r.status_code}): {_error_message(r)}")
        payload = r.json()
        host = payload["host"]
        enrolled = state.AgentState(
            site_url=self.site_url,
            host_id=host["id"],
            hostname=host["hostname"],
            credential=payload["credential"],
        )
        state.save(self.config.state_dir, enrolled)
        self._last_sent = report
        log.info("enrolled as host %s (%s)", host["hostname"], host["id"])
        return enrolled

    def _post_with_retries(self, url: str, body: dict[str, Any]) -> httpx.Response:
        """POST, retrying transport errors (a slow or flaky link) with bounded backoff;
        an answer, even a refusal, is returned at once."""
        for delay in self.config.enroll_backoff:
            try:
                return self.client.post(url, json=body)
            except httpx.HTTPError as exc:
                log.warning("enrollment: no answer from the site (%s); retrying in %ss", exc, delay)
                time.sleep(delay)
        return self.client.post(url, json=body)

    def heartbeat(self) -> bool:
        """One beat; False when the site does not accept our credential any more."""
        assert self.state is not None
        report = self.collect()
        body: dict[str, Any] = {}
        if report != self._last_sent:
            body["hardware"] = report
        r = self.client.post(
            f"{self.site_url}{HOSTS_PATH}/agent/heartbeat",
            json=body,
            headers={CREDENTIAL_HEADER: self.state.credential},
        )
        if r.status_code == 401:
            return False
        if r.status_code != 200:
            raise AgentError(f"heartbeat refused ({r.status_code}): {_error_message(r)}")
        self._last_sent = report
        return True

    def start(self) -> state.AgentState:
        saved = state.load(self.config.state_dir)
        if saved is not None and saved.site_url == self.site_url:
            self.state = saved
            if self._first_heartbeat():
                return saved
            log.warning("the site refused the saved credential; enrolling again")
        self.state = self.enroll()
        return self.state

    def _first_heartbeat(self) -> bool:
        """A restarted agent's first beat, retried while the site does not answer (it
        may be restarting too)."""
        for delay in self.config.enroll_backoff:
            try:
                return self.heartbeat()
            except httpx.HTTPError as exc:
                log.warning("no answer from the site (%s); retrying in %ss", exc, delay)
                if self.stopping.wait(delay):
                    break
        return self.heartbeat()

    def run(self, *, on_ready: Callable[[state.AgentState], None] | None = None) -> None:
        enrolled = self.start()
        if on_ready is not None:
            on_ready(enrolled)
        while not self.stopping.wait(self.config.interval_seconds):
            try:
                if not self.heartbeat():
                    raise AgentError("the site no longer accepts this host's credential")
            except httpx.HTTPError as exc:
                log.warning("heartbeat failed, retrying: %s", exc)

    def stop(self) -> None:
        self.stopping.set()
