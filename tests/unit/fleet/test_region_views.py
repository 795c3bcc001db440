"""A region operator sees only its region everywhere: the fleet registry, this site's
health (its peers) and telemetry (its RTTs), not only the aggregated fleet views."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from edgefed.services.sites.gossip import gossip_round
from edgefed.testkit.asgi_fleet import FleetTransport
from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings
from edgefed.testkit.inprocess_fleet import admin, ctx_of, enroll, registry
from edgefed.testkit.tokens import forge_token

REGIONS = {"Berlin": "eu", "Paris": "eu", "Denver": "us"}


@contextlib.asynccontextmanager
async def regional_fleet(tmp_path: Path) -> AsyncIterator[dict[str, InProcessSite]]:
    transport = FleetTransport()
    sites: dict[str, InProcessSite] = {}
    async with contextlib.AsyncExitStack() as stack:
        for name, region in REGIONS.items():
            settings = site_settings(
                tmp_path / name.lower(),
                name=name,
                gossip_interval_seconds=3600.0,
                labels={"region": region},
            )
            site = await stack.enter_async_context(run_site(settings, transport=transport))
            transport.add(f"{name.lower()}.test", httpx.ASGITransport(app=site.app))
            sites[name] = site
        for name in ("Paris", "Denver"):
            await enroll(sites["Berlin"], sites[name])
        await gossip_round(registry(sites["Berlin"]))
        yield sites


def eu_operator(site: InProcessSite) -> dict[str, str]:
    token = forge_token(ctx_of(site), user="eve", project="ops", role="region:eu")
    return {"X-Auth-Token": token}


async def test_a_region_operator_sees_its_region_only_in_the_registry_health_and_telemetry(
    tmp_path: Path,
) -> None:
    async with regional_fleet(tmp_path) as sites:
        berlin = sites["Berlin"]
        eu = eu_operator(berlin)
        # The registry: an admin sees every site, the eu operator the eu sites.
        r = await berlin.client.get("/edge/v1/fleet/sites", headers=admin(berlin))
        assert {s["name"] for s in r.json()["sites"]} == {"Berlin", "Paris", "Denver"}
        r = await berlin.client.get("/edge/v1/fleet/sites", headers=eu)
        assert r.status_code == 200
        assert {s["name"] for s in r.json()["sites"]} == {"Berlin", "Paris"}
        assert (await berlin.client.get("/edge/v1/fleet/sites/Paris", headers=eu)).is_success
        r = await berlin.client.get("/edge/v1/fleet/sites/Denver", headers=eu)
        assert r.status_code == 404
        # Berlin's health lists its peers: the eu operator sees Paris, not Denver.
        r = await berlin.client.get("/edge/v1/health", headers=admin(berlin))
        assert {p["name"] for p in r.json()["health"]["peers"]} == {"Paris", "Denver"}
        r = await berlin.client.get("/edge/v1/health", headers=eu)
        assert r.status_code == 200
        assert {p["name"] for p in r.json()["health"]["peers"]} == {"Paris"}
        # Telemetry's RTT row, likewise.
        ctx_of(berlin).fleet.rtt["Berlin"] = {"Paris": 9.0, "Denver": 95.0}  # type: ignore[union-attr]
        r = await berlin.client.get("/edge/v1/telemetry", headers=eu)
        assert r.json()["telemetry"]["rtt_ms"] == {"Paris": 9.0}
        r = await berlin.client.get("/edge/v1/fleet/status", headers=eu)
        (own,) = [s for s in r.json()["fleet_status"]["sites"] if s["name"] == "Berlin"]
        assert own["rtt_ms"] == {"Paris": 9.0}
        # Denver itself stays closed to the eu operator.
        r = await sites["Denver"].client.get(
            "/edge/v1/health", headers=eu_operator(sites["Denver"])
        )
        assert r.status_code == 403
