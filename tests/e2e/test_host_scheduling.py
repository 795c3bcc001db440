"""Capacity from the inventory: servers land only on unlocked, up compute hosts.

Two real agents join a real site; ``openstack hypervisor list`` shows their hosts;
a locked host and a host whose agent was killed take no new server; when no host can
take one, the server goes to ERROR with a message that says why, host by host.
``openstack server migrate --live-migration --host`` refuses a locked host and moves a
server to an unlocked one, and refuses to move one whose host is down.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefed.testkit.agents import Agent, edgefed, wait_for
from edgefed.testkit.fleet_process import password_token
from edgefed.testkit.osc import OpenStackCLI
from edgefed.testkit.process import SiteProcess

pytestmark = pytest.mark.e2e

TIMEOUT = 2.0


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteProcess]:
    proc = SiteProcess(
        name="Berlin",
        data_dir=tmp_path_factory.mktemp("sched"),
        extra_config=f"host_heartbeat_timeout_seconds = {TIMEOUT}\n",
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


def boot(http: httpx.Client, name: str) -> dict[str, Any]:
    r = http.post(
        "/compute/v2.1/servers",
        json={"server": {"name": name, "imageRef": IMAGE["id"], "flavorRef": "1"}},
    )
    assert r.status_code == 202, r.text
    server_id = r.json()["server"]["id"]
    end = time.monotonic() + 30
    while time.monotonic() < end:
        server = http.get(f"/compute/v2.1/servers/{server_id}").json()["server"]
        if server["status"] in ("ACTIVE", "ERROR"):
            return server  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"server {name} stayed in {server['status']}")


IMAGE: dict[str, Any] = {}


def test_scheduling_follows_the_inventory(site: SiteProcess, tmp_path: Path) -> None:
    token = password_token(site.url, site.password)
    http = httpx.Client(base_url=site.url, headers={"X-Auth-Token": token}, timeout=30)
    r = http.post(
        "/image/v2/images",
        json={"name": "tiny", "disk_format": "raw", "container_format": "bare"},
    )
    IMAGE.update(r.json())
    http.put(
        f"/image/v2/images/{IMAGE['id']}/file",
        content=b"x" * 1024,
        headers={"Content-Type": "application/octet-stream"},
    )
    agents = []
    try:
        for name in ("edge-a", "edge-b"):
            out = edgefed(site, "enroll-token", "--hostname", name, "--personality", "edgeworker")
            assert out.returncode == 0, out.stderr
            agent = Agent(site, out.stdout.strip(), name, tmp_path / name)
            assert agent.ready.wait(30)
            agents.append(agent)
            assert edgefed(site, "unlock", name).returncode == 0

        hypervisors = OpenStackCLI(auth_url=site.auth_url, password=site.password).json(
            "hypervisor", "list"
        )
        assert {h["Hypervisor Hostname"] for h in hypervisors} == {"edge-a", "edge-b"}

        # edge-a locked: every new server goes to edge-b.
        assert edgefed(site, "lock", "edge-a").returncode == 0
        for i in range(3):
            server = boot(http, f"vm{i}")
            assert server["status"] == "ACTIVE", server.get("fault")
            assert server["OS-EXT-SRV-ATTR:host"] == "edge-b"

        # A live migration by the CLI (the fake driver moves at once): not to a locked
        # host; once edge-a is unlocked, there, and back to edge-b's side of the test.
        osc = OpenStackCLI(auth_url=site.auth_url, password=site.password)
        live = ("server", "migrate", "--live-migration", "--host", "edge-a", "--wait", "vm0")
        refused = osc.run(*live, check=False)
        assert refused.returncode != 0 and "edge-a is locked" in refused.stderr, refused
        assert edgefed(site, "unlock", "edge-a").returncode == 0
        osc.run(*live)
        assert osc.json("server", "show", "vm0")["OS-EXT-SRV-ATTR:host"] == "edge-a"
        assert edgefed(site, "lock", "edge-a").returncode == 0

        # edge-b's agent killed: it goes down, and nothing can be scheduled.
        agents[1].stop(signal.SIGKILL)
        wait_for(
            lambda: "down" in edgefed(site, "show", "edge-b").stdout,
            deadline=TIMEOUT * 3 + 5,
            what="edge-b down",
        )
        refused = osc.run("server", "migrate", "--live-migration", "vm1", check=False)
        assert "Compute service of edge-b is unavailable" in refused.stderr, refused
        server = boot(http, "nowhere")
        assert server["status"] == "ERROR"
        message = server["fault"]["message"]
        assert "No valid host was found" in message
        assert "edge-a is locked" in message and "edge-b is down" in message

        # Unlocking edge-a gives room again.
        assert edgefed(site, "unlock", "edge-a").returncode == 0
        server = boot(http, "again")
        assert server["status"] == "ACTIVE" and server["OS-EXT-SRV-ATTR:host"] == "edge-a"
    finally:
        for agent in agents:
            agent.stop()
        http.close()
