"""Alarms of one site: operators raise, list, filter and clear them; the site raises
and clears its own for capacity, hosts down and unreachable peers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from edgefed.core.settings import HostSpec
from edgefed.services.fleet.monitor import HealthMonitor
from edgefed.store.image import ImageRepository
from edgefed.store.inventory import InventoryRepository, NewHost
from edgefed.testkit.asgi_fleet import FleetTransport
from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings
from edgefed.testkit.inprocess_fleet import admin, ctx_of, fleet
from edgefed.testkit.tokens import forge_token


async def raise_alarm(site: InProcessSite, **alarm: object) -> httpx.Response:
    return await site.client.post("/edge/v1/alarms", json={"alarm": alarm}, headers=admin(site))


async def test_operator_raises_lists_filters_and_clears(site: InProcessSite) -> None:
    r = await raise_alarm(site, severity="minor", entity="host=b1", reason="fan noisy")
    assert r.status_code == 201, r.text
    minor = r.json()["alarm"]
    assert minor["state"] == "active" and minor["origin"] == "operator"
    assert minor["raised_by"] == "admin" and minor["site"] == "Berlin"
    r = await raise_alarm(site, severity="critical", entity="rack=2", reason="power", type="power")
    assert r.status_code == 201
    again = await raise_alarm(
        site, severity="critical", entity="rack=2", reason="power", type="power"
    )
    assert again.status_code == 200  # one active alarm per (type, entity)
    assert again.json()["alarm"]["id"] == r.json()["alarm"]["id"]

    r = await site.client.get("/edge/v1/alarms?severity=critical", headers=admin(site))
    assert [a["entity"] for a in r.json()["alarms"]] == ["rack=2"]
    r = await site.client.post(f"/edge/v1/alarms/{minor['id']}/clear", headers=admin(site))
    assert r.status_code == 200 and r.json()["alarm"]["state"] == "cleared"
    r = await site.client.post(f"/edge/v1/alarms/{minor['id']}/clear", headers=admin(site))
    assert r.status_code == 409
    r = await site.client.get("/edge/v1/alarms", headers=admin(site))
    assert [a["type"] for a in r.json()["alarms"]] == ["power"]
    r = await site.client.get("/edge/v1/alarms?state=cleared", headers=admin(site))
    assert [a["id"] for a in r.json()["alarms"]] == [minor["id"]]


async def test_bad_alarms_are_refused_naming_the_field(site: InProcessSite) -> None:
    r = await raise_alarm(site, severity="apocalyptic", entity="x", reason="y")
    assert r.status_code == 400 and "severity" in r.text
    r = await raise_alarm(site, severity="major", entity="", reason="y")
    assert r.status_code == 400 and "entity" in r.text
    r = await site.client.get("/edge/v1/alarms?state=maybe", headers=admin(site))
    assert r.status_code == 400 and "state" in r.text
    r = await site.client.get("/edge/v1/alarms/nope", headers=admin(site))
    assert r.status_code == 404
    r = await site.client.get("/edge/v1/alarms")
    assert r.status_code == 401


async def test_project_members_without_fleet_roles_are_refused(site: InProcessSite) -> None:
    token = forge_token(ctx_of(site), user="alice", project="demo", role="member")
    r = await site.client.get("/edge/v1/alarms", headers={"X-Auth-Token": token})
    assert r.status_code == 403


async def _boot_tiny(site: InProcessSite) -> str:
    ctx = ctx_of(site)
    image = await ImageRepository(ctx.store).create(
        owner=None,
        name="cirros",
        disk_format="qcow2",
        container_format="bare",
        visibility="public",
        data=b"x" * 64,
        data_dir=site.settings.data_dir,
    )
    server = {"name": "vm", "imageRef": image.id, "flavorRef": "1", "networks": "none"}
    h = {**admin(site), "OpenStack-API-Version": "compute 2.96"}
    r = await site.client.post("/compute/v2.1/servers", json={"server": server}, headers=h)
    assert r.status_code == 202, r.text
    return str(r.json()["server"]["id"])


async def capacity_alarms_once(
    site: InProcessSite, monitor: HealthMonitor, *, want: bool
) -> list[dict[str, object]]:
    """Tick until capacity alarms are there (or gone), bounded: placement is async."""
    deadline = time.monotonic() + 10
    while True:
        await monitor.tick(probe=False)
        r = await site.client.get("/edge/v1/alarms?type=capacity", headers=admin(site))
        alarms: list[dict[str, object]] = r.json()["alarms"]
        if bool(alarms) == want or time.monotonic() > deadline:
            return alarms
        await asyncio.sleep(0.02)


async def test_capacity_alarm_raised_and_cleared(tmp_path: Path) -> None:
    settings = site_settings(
        tmp_path / "b",
        compute_hosts=(HostSpec(name="tiny-1", vcpus=1, ram_mb=1024, disk_gb=10),),
        capacity_alarm_percent=40.0,
    )
    async with run_site(settings) as site:
        monitor = HealthMonitor(ctx_of(site))
        server_id = await _boot_tiny(site)
        alarms = await capacity_alarms_once(site, monitor, want=True)
        assert [a["entity"] for a in alarms] == ["site=Berlin.resource=ram_mb"]
        assert alarms[0]["severity"] == "major" and "above 40%" in alarms[0]["reason"]
        await monitor.tick(probe=False)  # idempotent: still one
        r = await site.client.get("/edge/v1/alarms?type=capacity", headers=admin(site))
        assert len(r.json()["alarms"]) == 1
        h = {**admin(site), "OpenStack-API-Version": "compute 2.96"}
        r = await site.client.delete(f"/compute/v2.1/servers/{server_id}", headers=h)
        assert r.status_code == 204
        assert await capacity_alarms_once(site, monitor, want=False) == []


async def test_capacity_alarm_of_an_enrolled_host(tmp_path: Path) -> None:
    """The settings' host is large, the enrolled one small: the alarm follows the host
    the server really runs on."""
    settings = site_settings(
        tmp_path / "b",
        compute_hosts=(HostSpec(name="big-1", vcpus=64, ram_mb=10**6, disk_gb=10**4),),
        capacity_alarm_percent=40.0,
    )
    async with run_site(settings) as site:
        await InventoryRepository(ctx_of(site).store).hosts.create(
            new=NewHost(
                id="e1",
                hostname="edge-1",
                personality="worker",
                mgmt_ip=None,
                administrative="unlocked",
                availability="available",
                hardware={"cpus": 2, "memory_mb": 1024, "disks": [{"name": "d", "size_gb": 20}]},
                ram_allocation_ratio=1.0,
            )
        )
        monitor = HealthMonitor(ctx_of(site))
        await _boot_tiny(site)
        alarms = await capacity_alarms_once(site, monitor, want=True)
        assert [a["entity"] for a in alarms] == ["site=Berlin.resource=ram_mb"]


async def test_peer_unreachable_alarm_follows_a_cut(tmp_path: Path) -> None:
    transport = FleetTransport()
    async with fleet(tmp_path, ["Berlin", "Denver"], joined=True, transport=transport) as sites:
        berlin = sites["Berlin"]
        start = time.monotonic()  # gossip stamps contacts on the monotonic clock
        clock = [start]
        monitor = HealthMonitor(ctx_of(berlin), now=lambda: clock[0])
        await monitor.tick()  # Denver answers the probe
        transport.cut.add("denver.test")
        clock[0] = start + 10.0
        peers = await monitor.tick()
        assert peers["Denver"].status.value == "offline"
        r = await berlin.client.get("/edge/v1/alarms?type=peer_unreachable", headers=admin(berlin))
        [alarm] = r.json()["alarms"]
        assert alarm["entity"] == "site=Denver" and alarm["severity"] == "major"
        assert "Denver is unreachable" in alarm["reason"]
        transport.cut.discard("denver.test")
        clock[0] = start + 11.0
        peers = await monitor.tick()
        assert peers["Denver"].status.value == "online"
        r = await berlin.client.get("/edge/v1/alarms?type=peer_unreachable", headers=admin(berlin))
        assert r.json()["alarms"] == []
