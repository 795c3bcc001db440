"""Fleet operations across in-process sites: a two-level aggregation hierarchy whose
totals match the sites' own reports, region operators' views, remote control, /metrics."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from edgefed.core.settings import HostSpec, Location, MappingSpec, fleet_admin_mappings
from edgefed.services.fleet.monitor import HealthMonitor
from edgefed.services.sites.gossip import gossip_round
from edgefed.testkit.asgi_fleet import FleetTransport
from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings
from edgefed.testkit.inprocess_fleet import admin, ctx_of, enroll, registry
from edgefed.testkit.tokens import forge_token
from edgefed.testkit.wait import eventually

# name: (region, aggregate scope, hosts)
LAYOUT: dict[str, tuple[str, str | None, int]] = {
    "Central": ("core", "EuHub & UsHub", 1),
    "EuHub": ("eu", "@region=eu", 1),
    "Berlin": ("eu", None, 2),
    "Paris": ("eu", None, 1),
    "UsHub": ("us", "@region=us", 1),
    "Denver": ("us", None, 3),
}
COUNTRY = {"Central": "CH", "EuHub": "DE", "Berlin": "DE", "Paris": "FR", "UsHub": "US"}


@contextlib.asynccontextmanager
async def hierarchy(
    tmp_path: Path,
) -> AsyncIterator[tuple[dict[str, InProcessSite], FleetTransport]]:
    transport = FleetTransport()
    sites: dict[str, InProcessSite] = {}
    async with contextlib.AsyncExitStack() as stack:
        for i, (name, (region, aggregate, hosts)) in enumerate(LAYOUT.items()):
            settings = site_settings(
                tmp_path / name.lower(),
                name=name,
                gossip_interval_seconds=3600.0,
                labels={"region": region},
                location=Location(
                    lat=40.0 + i,
                    lon=-100.0 + 25 * i,
                    region=region,
                    country=COUNTRY.get(name, "US"),
                ),
                fleet_aggregate=aggregate,
                compute_hosts=tuple(
                    HostSpec(name=f"{name.lower()}-{n}", vcpus=8 * (n + 1)) for n in range(hosts)
                ),
                # Every site's admin is an admin here; the region operators of any site
                # are region operators here (the roles and project exist at every site).
                mapping=fleet_admin_mappings()
                + tuple(
                    MappingSpec(site="*", user=f"eve-{r}", role=f"region:{r}", project="ops")
                    for r in ("eu", "us")
                ),
            )
            site = await stack.enter_async_context(run_site(settings, transport=transport))
            transport.add(f"{name.lower()}.test", httpx.ASGITransport(app=site.app))
            sites[name] = site
            for body in (
                {"role": {"name": "region:eu"}},
                {"role": {"name": "region:us"}},
            ):
                r = await site.client.post("/identity/v3/roles", json=body, headers=admin(site))
                assert r.status_code == 201, r.text
            r = await site.client.post(
                "/identity/v3/projects", json={"project": {"name": "ops"}}, headers=admin(site)
            )
            assert r.status_code == 201, r.text
        first = sites["Central"]
        for name in list(LAYOUT)[1:]:
            await enroll(first, sites[name])
        await gossip_round(registry(first))
        for name in list(LAYOUT)[1:]:
            await gossip_round(registry(sites[name]))
        yield sites, transport


def region_token(site: InProcessSite, region: str) -> dict[str, str]:
    return {
        "X-Auth-Token": forge_token(
            ctx_of(site), user=f"eve-{region}", project="ops", role=f"region:{region}"
        )
    }


async def test_two_level_aggregate_equals_the_sum_of_the_sites_own_reports(tmp_path: Path) -> None:
    async with hierarchy(tmp_path) as (sites, _):
        r = await sites["Berlin"].client.post(
            "/edge/v1/alarms",
            json={
                "alarm": {"severity": "critical", "entity": "rack=1", "reason": "power feed lost"}
            },
            headers=admin(sites["Berlin"]),
        )
        assert r.status_code == 201
        own: dict[str, dict[str, Any]] = {}
        for name, site in sites.items():
            r = await site.client.get("/edge/v1/telemetry", headers=admin(site))
            assert r.status_code == 200, r.text
            own[name] = r.json()["telemetry"]

        status: dict[str, Any] = {}

        async def everyone_reported() -> bool:
            # Each hop waits 3 s for the level under it: on a starved machine the first
            # status may miss a region (shown as such); the next one has it.
            r = await sites["Central"].client.get(
                "/edge/v1/fleet/status", headers=admin(sites["Central"])
            )
            assert r.status_code == 200, r.text
            status.update(r.json()["fleet_status"])
            return {s["name"] for s in status["sites"]} == set(LAYOUT)

        await eventually(everyone_reported, within=30.0, what="every site in the status")
        assert {a["name"] for a in status["aggregators"]} == {"EuHub", "UsHub"}
        by_name = {s["name"]: s for s in status["sites"]}
        # Leaf sites were reported through their regional aggregator, by themselves.
        assert by_name["Berlin"]["reported_by"] == "Berlin"
        assert by_name["Berlin"]["status"] == "degraded"
        assert "power feed lost" in by_name["Berlin"]["reason"]
        assert by_name["Paris"]["status"] == "online"
        totals = status["totals"]
        for key in ("vcpus", "ram_mb", "disk_gb"):
            assert totals["capacity"][key]["total"] == sum(
                t["capacity"][key]["total"] for t in own.values()
            )
            assert totals["capacity"][key]["used"] == sum(
                t["capacity"][key]["used"] for t in own.values()
            )
        assert (
            totals["alarms"]["critical"] == sum(t["alarms"]["critical"] for t in own.values()) == 1
        )
        assert totals["servers"]["total"] == sum(t["servers"]["total"] for t in own.values())
        assert totals["hosts"] == sum(len(t["hosts"]) for t in own.values()) == 9
        assert totals["by_status"] == {"online": 5, "degraded": 1, "offline": 0}

        # The regional aggregator alone sees its region.
        r = await sites["EuHub"].client.get("/edge/v1/fleet/status", headers=admin(sites["EuHub"]))
        assert {s["name"] for s in r.json()["fleet_status"]["sites"]} == {
            "EuHub",
            "Berlin",
            "Paris",
        }


async def test_an_offline_site_is_shown_offline_with_the_reason(tmp_path: Path) -> None:
    async with hierarchy(tmp_path) as (sites, transport):
        eu = sites["EuHub"]
        monitor = ctx_of(eu).slots.require(HealthMonitor)
        transport.cut.add("paris.test")
        monitor.watch.started -= 100  # as if the monitor had been watching for a while
        monitor.watch.probed_ok["Paris"] = monitor.watch.now() - 60
        await monitor.tick()
        r = await eu.client.get("/edge/v1/fleet/status", headers=admin(eu))
        paris = next(s for s in r.json()["fleet_status"]["sites"] if s["name"] == "Paris")
        assert paris["status"] == "offline"
        assert "no answer for" in paris["reason"]
        r = await eu.client.get("/edge/v1/fleet/alarms?type=peer_unreachable", headers=admin(eu))
        assert [a["entity"] for a in r.json()["alarms"] if a["site"] == "EuHub"] == ["site=Paris"]


async def test_a_scoped_status_and_its_alarms_list_only_the_sites_of_the_scope(
    tmp_path: Path,
) -> None:
    async with hierarchy(tmp_path) as (sites, _):
        berlin, central = sites["Berlin"], sites["Central"]
        alarm = {"alarm": {"severity": "major", "entity": "rack=2", "reason": "fan failed"}}
        r = await berlin.client.post("/edge/v1/alarms", json=alarm, headers=admin(berlin))
        assert r.status_code == 201, r.text

        async def listed(site: InProcessSite, path: str) -> dict[str, Any]:
            r = await site.client.get(path, headers=admin(site))
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body

        status = (await listed(berlin, "/edge/v1/fleet/status?scope=@country=US"))["fleet_status"]
        assert [s["name"] for s in status["sites"]] == ["Denver", "UsHub"]
        assert sum(status["totals"]["by_status"].values()) == 2
        alarms = await listed(berlin, "/edge/v1/fleet/alarms?scope=@country=US")
        assert [s["name"] for s in alarms["sites"]] == ["Denver", "UsHub"]
        assert all(a["site"] in ("Denver", "UsHub") for a in alarms["alarms"])
        # Without a scope, the site asked is in its own view, with its alarm.
        alarms = await listed(berlin, "/edge/v1/fleet/alarms")
        assert "fan failed" in {a["reason"] for a in alarms["alarms"] if a["site"] == "Berlin"}
        # A scope naming the site asked lists it; an aggregator asked for itself does not
        # bring the sites it aggregates along.
        status = (await listed(berlin, "/edge/v1/fleet/status?scope=Berlin|Denver"))["fleet_status"]
        assert [s["name"] for s in status["sites"]] == ["Berlin", "Denver"]
        status = (await listed(central, "/edge/v1/fleet/status?scope=EuHub"))["fleet_status"]
        assert [s["name"] for s in status["sites"]] == ["EuHub"]
        # The same scope as the request's fleet entry: routed to the US sites, whose
        # answers list the US sites only.
        r = await berlin.client.get(
            "/edge/v1/fleet/status", headers={**admin(berlin), "X-Scope": "{fleet: @country=US}"}
        )
        assert r.status_code == 200, r.text
        assert [s["name"] for s in r.json()["fleet_status"]["sites"]] == ["Denver", "UsHub"]
        r = await berlin.client.get(
            "/edge/v1/fleet/alarms", headers={**admin(berlin), "X-Scope": "{edge: Denver}"}
        )
        assert r.status_code == 200, r.text
        assert [s["name"] for s in r.json()["sites"]] == ["Denver"]


async def test_a_region_operator_sees_and_acts_only_in_its_region(tmp_path: Path) -> None:
    async with hierarchy(tmp_path) as (sites, _):
        central = sites["Central"]
        eu = region_token(central, "eu")
        r = await central.client.get("/edge/v1/fleet/status?scope=*", headers=eu)
        assert r.status_code == 403
        assert "Denver" in r.json()["error"]["message"] or "Denver" in r.text
        r = await central.client.get("/edge/v1/fleet/status?scope=@region=eu", headers=eu)
        assert r.status_code == 200, r.text
        assert {s["name"] for s in r.json()["fleet_status"]["sites"]} == {
            "EuHub",
            "Berlin",
            "Paris",
        }
        r = await sites["EuHub"].client.get(
            "/edge/v1/fleet/status", headers=region_token(sites["EuHub"], "eu")
        )
        assert {s["name"] for s in r.json()["fleet_status"]["sites"]} == {
            "EuHub",
            "Berlin",
            "Paris",
        }
        # Per-site API: Denver refuses an eu operator, Berlin answers.
        r = await sites["Denver"].client.get(
            "/edge/v1/alarms", headers=region_token(sites["Denver"], "eu")
        )
        assert r.status_code == 403 and "Denver" in r.text
        r = await sites["Berlin"].client.get(
            "/edge/v1/alarms", headers=region_token(sites["Berlin"], "eu")
        )
        assert r.status_code == 200
        # Remote control: a scope reaching outside the region is refused, naming the sites.
        run = {"run": {"scope": "*", "method": "GET", "path": "/edge/v1/alarms"}}
        r = await central.client.post("/edge/v1/fleet/run", json=run, headers=eu)
        assert r.status_code == 403
        assert "Denver" in r.text and "UsHub" in r.text and "Central" in r.text
        run["run"]["scope"] = "@region=eu"
        r = await central.client.post("/edge/v1/fleet/run", json=run, headers=eu)
        assert r.status_code == 200, r.text
        body = r.json()["run"]
        assert body["ok"] and set(body["sites"]) == {"EuHub", "Berlin", "Paris"}


async def test_fleet_run_creates_a_flavor_at_every_site_of_a_region(tmp_path: Path) -> None:
    async with hierarchy(tmp_path) as (sites, _):
        central = sites["Central"]
        flavor = {"flavor": {"name": "edge.small", "ram": 512, "vcpus": 1, "disk": 1}}
        run = {
            "run": {
                "scope": "@region=eu",
                "method": "POST",
                "path": "/compute/v2.1/flavors",
                "body": flavor,
            }
        }
        r = await central.client.post("/edge/v1/fleet/run", json=run, headers=admin(central))
        assert r.status_code == 200, r.text
        body = r.json()["run"]
        assert body["ok"], body
        assert {x["site"] for x in body["results"]} == {"EuHub", "Berlin", "Paris"}
        for name in ("EuHub", "Berlin", "Paris", "Denver"):
            r = await sites[name].client.get("/compute/v2.1/flavors", headers=admin(sites[name]))
            names = {f["name"] for f in r.json()["flavors"]}
            assert ("edge.small" in names) is (name != "Denver")
        # A second run fails everywhere (the name is taken): the per-site errors say so.
        r = await central.client.post("/edge/v1/fleet/run", json=run, headers=admin(central))
        body = r.json()["run"]
        assert not body["ok"]
        assert all(x["status"] == 409 for x in body["results"])
        bad = {"run": {"scope": "@region=eu", "method": "GET", "path": "/nowhere"}}
        r = await central.client.post("/edge/v1/fleet/run", json=bad, headers=admin(central))
        assert r.status_code == 400 and "path" in r.text
        bad = {"run": {"scope": "@region=", "method": "GET", "path": "/edge/v1/alarms"}}
        r = await central.client.post("/edge/v1/fleet/run", json=bad, headers=admin(central))
        assert r.status_code == 400 and "scope" in r.text


async def test_metrics_parse_with_the_prometheus_parser(tmp_path: Path) -> None:
    async with hierarchy(tmp_path) as (sites, _):
        berlin = sites["Berlin"]
        await berlin.client.get("/edge/v1/alarms", headers=admin(berlin))
        r = await berlin.client.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        families = {f.name: f for f in text_string_to_metric_families(r.text)}
        for name in (
            "edgefed_http_requests",
            "edgefed_http_request_duration_seconds",
            "edgefed_capacity_vcpus",
            "edgefed_used_memory_bytes",
            "edgefed_alarms_active",
            "edgefed_peer_up",
            "edgefed_servers",
        ):
            assert name in families, sorted(families)
        hosts = {s.labels["host"] for s in families["edgefed_capacity_vcpus"].samples}
        assert hosts == {"berlin-0", "berlin-1"}
        served = [
            s
            for s in families["edgefed_http_requests"].samples
            if s.labels.get("service") == "edge"
        ]
        assert served and served[0].value >= 1
