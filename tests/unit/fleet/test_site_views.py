"""One site's fleet views as an operator reads them: health, telemetry (capacity from
the hosts and the allocation ratios, the sync figures), /metrics without a token, the
fleet alarms sorted and filtered, and a site's own report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from edgefed.core.settings import HostSpec
from edgefed.services.fleet.report import own_report
from edgefed.store.alarms import AlarmRepository, Severity
from edgefed.store.image import ImageRepository
from edgefed.store.inventory import InventoryRepository, NewHost
from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings
from edgefed.testkit.inprocess_fleet import admin, ctx_of
from edgefed.testkit.wait import eventually


async def raise_alarm(site: InProcessSite, type: str, severity: Severity, entity: str) -> None:
    await AlarmRepository(ctx_of(site).store).raise_alarm(
        type=type, severity=severity, entity=entity, reason=f"{type} on {entity}", now=1.0
    )


async def test_capacity_is_each_hosts_size_times_the_allocation_ratios(tmp_path: Path) -> None:
    settings = site_settings(
        tmp_path / "berlin",
        compute_hosts=(
            HostSpec(name="b1", vcpus=8, ram_mb=4096, disk_gb=100),
            HostSpec(name="b2", vcpus=2, ram_mb=1024, disk_gb=10),
        ),
        cpu_allocation_ratio=4.0,
        ram_allocation_ratio=1.5,
        disk_allocation_ratio=1.0,
    )
    async with run_site(settings) as site:
        # A host of the inventory that runs no servers changes nothing.
        await InventoryRepository(ctx_of(site).store).hosts.create(
            new=NewHost(id="s1", hostname="store-1", personality="storage", mgmt_ip=None)
        )
        r = await site.client.get("/edge/v1/telemetry", headers=admin(site))
        assert r.status_code == 200
        telemetry = r.json()["telemetry"]
        hosts = {h["name"]: h for h in telemetry["hosts"]}
        assert set(hosts) == {"b1", "b2"}
        assert hosts["b1"]["vcpus"] == {"total": 32, "used": 0}
        assert hosts["b1"]["ram_mb"] == {"total": 6144, "used": 0}
        assert hosts["b2"]["disk_gb"] == {"total": 10, "used": 0}
        assert hosts["b1"]["availability"] == hosts["b2"]["availability"] == "available"
        assert telemetry["capacity"]["vcpus"] == {"total": 40, "used": 0, "percent": 0.0}
        assert telemetry["servers"] == {"total": 0, "by_state": {}}
        assert telemetry["site"] == "Berlin"
        r = await site.client.get("/metrics")
        families = {f.name: f for f in text_string_to_metric_families(r.text)}
        up = {s.labels["host"]: s.value for s in families["edgefed_host_up"].samples}
        assert up == {"b1": 1.0, "b2": 1.0}


async def test_enrolled_hosts_replace_the_settings_and_show_their_use(tmp_path: Path) -> None:
    """A real enrolled host with a server on it: its reported size times its own
    ratios, and what the server takes (it showed 0 used while telemetry read only the
    settings' hosts)."""
    settings = site_settings(
        tmp_path / "berlin", compute_hosts=(HostSpec(name="b1", vcpus=8, ram_mb=4096),)
    )
    hw = {"cpus": 4, "memory_mb": 2048, "disks": [{"name": "vda", "size_gb": 30}]}
    async with run_site(settings) as site:
        hosts_repo = InventoryRepository(ctx_of(site).store).hosts
        for name, availability in (("edge-1", "available"), ("edge-2", "down")):
            await hosts_repo.create(
                new=NewHost(
                    id=f"id-{name}",
                    hostname=name,
                    personality="edgeworker" if name == "edge-2" else "worker",
                    mgmt_ip=None,
                    administrative="unlocked",
                    availability=availability,
                    hardware=hw,
                    cpu_allocation_ratio=2.0,
                    ram_allocation_ratio=1.0,
                    disk_allocation_ratio=1.0,
                )
            )
        headers = {**admin(site), "OpenStack-API-Version": "compute 2.96"}
        image = await ImageRepository(ctx_of(site).store).create(
            owner=None,
            name="img",
            disk_format="raw",
            container_format="bare",
            visibility="public",
            data=b"disk",
            data_dir=settings.data_dir,
        )
        body = {"name": "vm", "imageRef": image.id, "flavorRef": "2", "networks": "none"}
        r = await site.client.post("/compute/v2.1/servers", json={"server": body}, headers=headers)
        assert r.status_code == 202, r.text
        server_id = r.json()["server"]["id"]

        async def active() -> bool:
            r = await site.client.get(f"/compute/v2.1/servers/{server_id}", headers=headers)
            return bool(r.json()["server"]["status"] == "ACTIVE")

        await eventually(active, within=10, every=0.01, what="the server ACTIVE")
        telemetry = (await site.client.get("/edge/v1/telemetry", headers=admin(site))).json()
        hosts = {h["name"]: h for h in telemetry["telemetry"]["hosts"]}
        assert set(hosts) == {"edge-1", "edge-2"}
        assert hosts["edge-1"]["vcpus"] == {"total": 8, "used": 1}
        assert hosts["edge-1"]["ram_mb"] == {"total": 2048, "used": 2048}
        assert hosts["edge-1"]["disk_gb"] == {"total": 30, "used": 20}
        assert hosts["edge-1"]["servers"] == 1
        assert hosts["edge-2"]["availability"] == "down" and hosts["edge-2"]["servers"] == 0
        capacity = telemetry["telemetry"]["capacity"]
        assert capacity["ram_mb"] == {"total": 4096, "used": 2048, "percent": 50.0}
        r = await site.client.get("/metrics")
        families = {f.name: f for f in text_string_to_metric_families(r.text)}
        used = {s.labels["host"]: s.value for s in families["edgefed_used_memory_bytes"].samples}
        assert used == {"edge-1": 2048 * 1024 * 1024, "edge-2": 0}


async def test_telemetry_counts_requests_alarms_and_sync_when_there_is_sync(
    site: InProcessSite,
) -> None:
    ctx = ctx_of(site)
    await raise_alarm(site, "operator", Severity.MINOR, "rack=1")

    class Sync:
        def report(self) -> Any:
            return {
                "queue_depth": 2,
                "lag_seconds": 1.5,
                "conflicts": 0,
                "conflicts_by_source": {},
                "peers": {},
            }

    ctx.sync_status = None
    await site.client.get("/edge/v1/alarms", headers=admin(site))
    r = await site.client.get("/edge/v1/telemetry", headers=admin(site))
    telemetry = r.json()["telemetry"]
    assert telemetry["sync"] is None
    assert telemetry["alarms"]["minor"] == 1
    assert telemetry["requests"]["edge"]["requests"] >= 1
    ctx.sync_status = Sync()  # type: ignore[assignment]
    r = await site.client.get("/edge/v1/telemetry", headers=admin(site))
    assert r.json()["telemetry"]["sync"]["queue_depth"] == 2


async def test_metrics_need_no_token_and_carry_both_request_and_site_figures(
    site: InProcessSite,
) -> None:
    await site.client.get("/edge/v1/alarms", headers=admin(site))
    r = await site.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    names = {f.name for f in text_string_to_metric_families(r.text)}
    assert {"edgefed_http_requests", "edgefed_capacity_vcpus", "edgefed_sync_queue_depth"} <= names


async def test_health_says_what_degrades_this_site_and_what_does_not(site: InProcessSite) -> None:
    async def health() -> dict[str, Any]:
        r = await site.client.get("/edge/v1/health", headers=admin(site))
        assert r.status_code == 200
        body: dict[str, Any] = r.json()["health"]
        return body

    assert (await health())["status"] == "online"
    # Alarms about someone else, or minor ones, do not degrade it.
    await raise_alarm(site, "peer_unreachable", Severity.MAJOR, "site=Paris")
    await raise_alarm(site, "sync_failing", Severity.MAJOR, "site=Rome")
    await raise_alarm(site, "operator", Severity.MINOR, "rack=1")
    body = await health()
    assert body["status"] == "online" and body["alarms"]["major"] == 2
    await raise_alarm(site, "power", Severity.CRITICAL, "rack=2")
    body = await health()
    assert body["status"] == "degraded"
    assert body["reason"] == "1 critical/major alarm(s): power on rack=2"
    assert body["site"] == "Berlin" and body["peers"] == []


async def test_a_report_lists_the_worst_alarms_first_and_counts_them(site: InProcessSite) -> None:
    await raise_alarm(site, "a", Severity.WARNING, "x=1")
    await raise_alarm(site, "b", Severity.CRITICAL, "x=2")
    await raise_alarm(site, "c", Severity.MINOR, "x=3")
    report = await own_report(ctx_of(site))
    assert [a["severity"] for a in report["active_alarms"]] == ["critical", "minor", "warning"]
    assert report["alarms"] == {"critical": 1, "major": 0, "minor": 1, "warning": 1}
    assert report["reported_by"] == "Berlin" and report["hosts_down"] == 0


async def test_fleet_alarms_are_sorted_by_severity_and_filtered(site: InProcessSite) -> None:
    await raise_alarm(site, "operator", Severity.MINOR, "rack=1")
    await raise_alarm(site, "power", Severity.CRITICAL, "rack=2")
    await raise_alarm(site, "operator", Severity.MAJOR, "rack=3")
    r = await site.client.get("/edge/v1/fleet/alarms", headers=admin(site))
    assert [a["entity"] for a in r.json()["alarms"]] == ["rack=2", "rack=3", "rack=1"]
    assert r.json()["sites"] == [
        {
            "name": "Berlin",
            "status": "degraded",
            "reason": "2 critical/major alarm(s): power on rack=2",
        }
    ]
    r = await site.client.get("/edge/v1/fleet/alarms?type=operator", headers=admin(site))
    assert [a["entity"] for a in r.json()["alarms"]] == ["rack=3", "rack=1"]
    r = await site.client.get("/edge/v1/fleet/alarms?severity=minor", headers=admin(site))
    assert [a["entity"] for a in r.json()["alarms"]] == ["rack=1"]
    r = await site.client.get("/edge/v1/fleet/alarms?severity=dire", headers=admin(site))
    assert r.status_code == 400


async def test_the_default_scope_is_the_sites_aggregate_or_every_site(tmp_path: Path) -> None:
    async with run_site(site_settings(tmp_path / "b", fleet_aggregate="Berlin")) as site:
        r = await site.client.get("/edge/v1/fleet/status", headers=admin(site))
        status = r.json()["fleet_status"]
        assert (status["reporter"], status["scope"]) == ("Berlin", "Berlin")
        r = await site.client.get("/edge/v1/fleet/status?scope=*", headers=admin(site))
        assert r.json()["fleet_status"]["scope"] == "*"
    async with run_site(site_settings(tmp_path / "c")) as site:
        r = await site.client.get("/edge/v1/fleet/status", headers=admin(site))
        assert r.json()["fleet_status"]["scope"] == "*"
        assert r.json()["fleet_status"]["totals"]["sites"] == 1
        r = await site.client.get("/edge/v1/fleet/status?scope=%40region%3D", headers=admin(site))
        assert r.status_code == 400 and "scope" in r.text
