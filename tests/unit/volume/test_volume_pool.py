"""The volume pool's capacity: volumes are sparse, so their sizes may add up to the
storage times the over-subscription ratio; a create or an extend beyond is a 400
naming the figures and leaves nothing; the figures reach telemetry, /metrics and the
site's fleet status."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cinder_kit import action, admin, get, post, volume
from prometheus_client.parser import text_string_to_metric_families

from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings

GIB = 1 << 30


@pytest.fixture
async def site(tmp_path: Path, database_url: str | None) -> AsyncIterator[InProcessSite]:
    """A site whose pool may hold 2.5 GB of volumes, whatever its disk's size."""
    found = os.statvfs(tmp_path)
    storage_gb = found.f_blocks * found.f_frsize / GIB
    settings = site_settings(
        tmp_path / "berlin",
        database_url=database_url,
        volume_over_subscription_ratio=2.5 / storage_gb,
    )
    async with run_site(settings) as s:
        yield s


async def test_volumes_fill_the_pool_then_are_refused(site: InProcessSite) -> None:
    h = admin(site)
    first = await volume(site, h, size=2)
    r = await post(site, h, "volumes", {"volume": {"size": 1, "name": "too-many"}})
    assert r.status_code == 400, r.text
    message = r.json()["badRequest"]["message"]
    assert (
        "not enough capacity in the volume pool" in message and "3 GB would be allocated" in message
    )
    r = await action(site, h, first["id"], "os-extend", {"new_size": 3})
    assert r.status_code == 400 and "1 GB more" in r.text
    listed = (await get(site, h, "volumes")).json()["volumes"]
    assert [v["id"] for v in listed] == [first["id"]]  # the refused one left nothing
    assert (await get(site, h, f"volumes/{first['id']}")).json()["volume"]["size"] == 2


async def test_the_pool_shows_in_telemetry_metrics_and_status(site: InProcessSite) -> None:
    h = admin(site)
    await volume(site, h, size=2)
    r = await site.client.get("/edge/v1/telemetry", headers=h)
    telemetry = r.json()["telemetry"]
    assert telemetry["volumes"]["allocated_gb"] == 2 and telemetry["volumes"]["volumes"] == 1
    assert telemetry["volumes"]["capacity_gb"] == pytest.approx(2.5, abs=0.1)
    assert telemetry["capacity"]["volume_gb"]["used"] == 2
    assert telemetry["capacity"]["volume_gb"]["percent"] == pytest.approx(80.0, abs=4)
    metrics = await site.client.get("/metrics")
    families = {f.name: f for f in text_string_to_metric_families(metrics.text)}
    [allocated] = families["edgefed_volume_allocated_bytes"].samples
    assert allocated.value == 2 * GIB and allocated.labels == {"site": "Berlin"}
    status = (await site.client.get("/edge/v1/fleet/status", headers=h)).json()["fleet_status"]
    assert status["totals"]["capacity"]["volume_gb"]["used"] == 2
