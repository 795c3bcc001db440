"""Per-guest figures for /metrics: the records every time, the driver's counters cached
and refreshed in bounded time."""

from __future__ import annotations

import asyncio
from typing import Any

from compute_testkit import boot, wait_for
from prometheus_client.parser import text_string_to_metric_families

from edgefed.drivers.base import DriverError
from edgefed.services.compute.guest_metrics import GuestMetricsCache, counters
from edgefed.services.compute.state import ComputeState
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.wait import eventually

C = "/compute/v2.1"


def diagnostics_of(cpu_ns: int, rx: int) -> dict[str, Any]:
    return {
        "cpu_details": [{"id": 0, "time": cpu_ns}, {"id": 1, "time": cpu_ns}],
        "memory_details": {"maximum": 512, "used": 40},
        "disk_details": [{"read_bytes": 100, "write_bytes": 10}, {"read_bytes": 1}],
        "nic_details": [{"rx_octets": rx, "tx_octets": 7}],
    }


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Driver:
    """Diagnostics the test decides, counting the calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.answers: dict[str, Any] = {}

    async def diagnostics(self, instance_id: str) -> dict[str, Any]:
        self.calls.append(instance_id)
        answer = self.answers.get(instance_id)
        if isinstance(answer, Exception):
            raise answer
        if answer == "hang":
            await asyncio.sleep(3600)
        if isinstance(answer, tuple):  # ("slow", seconds, diagnostics)
            await asyncio.sleep(answer[1])
            answer = answer[2]
        return dict(answer or {})


def test_counters_sum_the_lists() -> None:
    assert counters(diagnostics_of(2_000_000_000, 5)) == {
        "cpu_time_seconds": 4.0,
        "memory_used_mb": 40,
        "disk_read_bytes": 101,
        "disk_write_bytes": 10,
        "net_rx_bytes": 5,
        "net_tx_bytes": 7,
    }
    assert set(counters({}).values()) == {None}


async def booted(site: InProcessSite, h: dict[str, str], image_id: str, n: int) -> list[str]:
    ids = []
    for i in range(n):
        created = await boot(site, h, image_id, name=f"g{i}", flavorRef="2")
        ids.append(created["id"])
    for server_id in ids:
        await wait_for(site, h, server_id, "ACTIVE")
    return ids


async def test_counters_are_cached_and_refreshed_in_bounded_time(site, h, image_id):
    one, two, three = await booted(site, h, image_id, 3)
    state = site.app.state.ctx.slots.require(ComputeState)
    driver, clock = Driver(), Clock()
    driver.answers = {one: diagnostics_of(10**9, 1), two: diagnostics_of(10**9, 2)}
    cache = GuestMetricsCache(
        servers=state.servers,
        driver=driver,
        max_age=15,
        timeout=0.2,
        clock=clock,  # type: ignore[arg-type]
    )
    samples = {s.server_id: s for s in await cache.samples()}
    assert set(samples) == {one, two, three}
    assert samples[one].power_state == 1 and samples[one].vcpus == 1
    assert samples[one].ram_mb == 2048 and samples[one].net_rx_bytes == 1
    assert samples[three].cpu_time_seconds is None  # its driver said nothing
    assert sorted(driver.calls) == sorted([one, two, three])
    # Within max_age: no call to the driver, the same figures.
    driver.answers[one] = diagnostics_of(10**9, 99)
    clock.now += 14
    assert {s.server_id: s.net_rx_bytes for s in await cache.samples()}[one] == 1
    assert len(driver.calls) == 3
    # Later: refreshed; a guest that hangs keeps what it had, one that fails too.
    driver.answers[two] = "hang"
    driver.answers[three] = DriverError("gone")
    clock.now += 2
    loop = asyncio.get_running_loop()
    started = loop.time()
    samples = {s.server_id: s for s in await cache.samples()}
    assert loop.time() - started < 2
    assert samples[one].net_rx_bytes == 99 and samples[two].net_rx_bytes == 2
    assert samples[three].net_rx_bytes is None
    # A stopped guest is still listed, without counters.
    r = await site.client.post(f"{C}/servers/{one}/action", json={"os-stop": None}, headers=h)
    assert r.status_code == 202
    await wait_for(site, h, one, "SHUTOFF")
    clock.now += 20
    samples = {s.server_id: s for s in await cache.samples()}
    assert samples[one].power_state == 4 and samples[one].cpu_time_seconds is None
    # The hanging call is still the only one for that guest; stopping cancels it.
    assert driver.calls.count(two) == 2
    await cache.close()


async def test_a_slow_guest_lands_in_the_cache_after_the_scrape(site, h, image_id):
    """A scrape does not wait for every guest; what answers later is there next time."""
    one, two = await booted(site, h, image_id, 2)
    state = site.app.state.ctx.slots.require(ComputeState)
    driver, clock = Driver(), Clock()
    driver.answers = {one: diagnostics_of(10**9, 1), two: ("slow", 0.5, diagnostics_of(1, 42))}
    cache = GuestMetricsCache(
        servers=state.servers,
        driver=driver,
        max_age=15,
        timeout=0.05,
        clock=clock,  # type: ignore[arg-type]
    )
    samples = {s.server_id: s for s in await cache.samples()}
    assert samples[one].net_rx_bytes == 1 and samples[two].net_rx_bytes is None

    async def landed() -> bool:
        return {s.server_id: s for s in await cache.samples()}[two].net_rx_bytes == 42

    await eventually(landed, within=5, every=0.05, what="the slow guest's counters")
    assert driver.calls.count(two) == 1  # within max_age: no second call
    await cache.close()


async def test_metrics_show_each_guest(site, h, image_id):
    (server_id,) = await booted(site, h, image_id, 1)
    r = await site.client.get("/metrics")
    assert r.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(r.text)}

    def value(family: str) -> float:
        (sample,) = [s for s in families[family].samples if s.labels["server"] == server_id]
        assert set(sample.labels) == {"site", "server", "project", "host"}
        return float(sample.value)

    assert value("edgefed_guest_power_state") == 1
    assert value("edgefed_guest_vcpus") == 1
    assert value("edgefed_guest_memory_bytes") == 2048 * 1024 * 1024
    assert value("edgefed_guest_memory_used_bytes") == 0  # what the fake says
    assert families["edgefed_guest_cpu_seconds"].type == "counter"
    assert families["edgefed_guest_cpu_seconds"].samples == []  # the fake has no CPU time
