"""os-hypervisors as ``openstack hypervisor show`` reads it: the inventory's real hosts,
their usage, the driver's CPU model and accelerator, Nova's microversion changes."""

from __future__ import annotations

import json
import platform
from typing import Any

from compute_testkit import boot, wait_for

from edgefed.drivers.base import HypervisorInfo
from edgefed.services.compute.state import ComputeState
from edgefed.store.inventory import InventoryRepository, NewHost
from edgefed.testkit.inprocess import InProcessSite

C = "/compute/v2.1"
HW = {
    "cpus": 4,
    "memory_mb": 8192,
    "disks": [{"name": "vda", "size_gb": 40}, {"name": "vdb", "size_gb": 10.5}],
    "machine": "aarch64",
}


def at(headers: dict[str, str], version: str) -> dict[str, str]:
    return {**headers, "OpenStack-API-Version": f"compute {version}"}


async def enroll_compute_host(site: InProcessSite, name: str = "edge-7", **extra: Any) -> None:
    values: dict[str, Any] = {
        "id": f"id-{name}",
        "hostname": name,
        "personality": "worker",
        "mgmt_ip": None,
        "administrative": "unlocked",
        "availability": "available",
        "hardware": HW,
        **extra,
    }
    await InventoryRepository(site.app.state.ctx.store).hosts.create(new=NewHost(**values))


async def detail(site: InProcessSite, headers: dict[str, str], **params: str) -> Any:
    return await site.client.get(f"{C}/os-hypervisors/detail", headers=headers, params=params)


async def test_cpu_info_names_the_model_and_accelerator(site, h, monkeypatch):
    state = site.app.state.ctx.slots.require(ComputeState)
    monkeypatch.setattr(
        state.driver,
        "hypervisor",
        lambda host: HypervisorInfo(
            hypervisor_type="QEMU",
            hypervisor_version=8002002,
            host_ip="192.0.2.7",
            cpu_model="Intel(R) Xeon(R) Gold 6230",
            accel="tcg",
        ),
    )
    hyp = (await detail(site, at(h, "2.87"))).json()["hypervisors"][0]
    assert hyp["hypervisor_type"] == "QEMU" and hyp["hypervisor_version"] == 8002002
    assert hyp["host_ip"] == "192.0.2.7"
    assert hyp["cpu_info"] == {
        "arch": platform.machine(),
        "model": "Intel(R) Xeon(R) Gold 6230",
        "vendor": "Intel",
        "topology": {"cells": 1, "sockets": 1, "cores": hyp["vcpus"], "threads": 1},
        "features": [],
        "accel": "tcg",
    }
    # Before 2.28 the same as a JSON string.
    old = (await detail(site, at(h, "2.27"))).json()["hypervisors"][0]
    assert json.loads(old["cpu_info"]) == hyp["cpu_info"]
    assert isinstance(old["id"], int)
    # From 2.88 neither usage nor cpu_info, and an uptime nobody reports.
    new = (await detail(site, at(h, "2.88"))).json()["hypervisors"][0]
    assert "cpu_info" not in new and "vcpus" not in new and new["uptime"] is None
    assert new["hypervisor_type"] == "QEMU"


async def test_an_enrolled_host_replaces_the_settings_hosts(site, h, image_id):
    await enroll_compute_host(site)
    hyps = (await detail(site, at(h, "2.87"))).json()["hypervisors"]
    assert [x["hypervisor_hostname"] for x in hyps] == ["edge-7"]
    hyp = hyps[0]
    assert (hyp["vcpus"], hyp["memory_mb"], hyp["local_gb"]) == (4, 8192, 50)
    assert hyp["cpu_info"]["arch"] == "aarch64" and hyp["cpu_info"]["model"] == "fake"
    assert hyp["state"] == "up" and hyp["status"] == "enabled"
    created = await boot(site, h, image_id, flavorRef="2")
    await wait_for(site, h, created["id"], "ACTIVE")
    hyp = (await site.client.get(f"{C}/os-hypervisors/{hyp['id']}", headers=at(h, "2.87"))).json()
    hyp = hyp["hypervisor"]
    assert (hyp["vcpus_used"], hyp["memory_mb_used"], hyp["local_gb_used"]) == (1, 2048, 20)
    assert hyp["free_ram_mb"] == 8192 - 2048 and hyp["running_vms"] == 1
    stats = await site.client.get(f"{C}/os-hypervisors/statistics", headers=at(h, "2.87"))
    assert stats.json()["hypervisor_statistics"]["vcpus"] == 4


async def test_pattern_and_with_servers_from_2_53(site, h, image_id):
    await enroll_compute_host(site, "edge-7")
    await enroll_compute_host(site, "core-1", hardware={**HW, "cpus": 8})
    created = await boot(site, h, image_id, flavorRef="2")
    await wait_for(site, h, created["id"], "ACTIVE")
    r = await site.client.get(
        f"{C}/os-hypervisors", headers=at(h, "2.53"), params={"hypervisor_hostname_pattern": "edge"}
    )
    assert [x["hypervisor_hostname"] for x in r.json()["hypervisors"]] == ["edge-7"]
    r = await site.client.get(
        f"{C}/os-hypervisors", headers=at(h, "2.53"), params={"hypervisor_hostname_pattern": "x"}
    )
    assert r.status_code == 404
    assert r.json()["itemNotFound"]["message"] == "No hypervisor matching 'x' could be found."
    r = await detail(site, at(h, "2.53"), hypervisor_hostname_pattern="e", limit="1")
    assert r.status_code == 400
    r = await detail(site, at(h, "2.53"), with_servers="true")
    placed = {x["hypervisor_hostname"]: x["servers"] for x in r.json()["hypervisors"]}
    # The most free RAM wins: both hosts have 8 GB, so ties go by name.
    assert placed == {"core-1": [{"name": "vm", "uuid": created["id"]}], "edge-7": []}
    r = await detail(site, at(h, "2.53"), with_servers="maybe")
    assert r.status_code == 400 and "with_servers" in r.json()["badRequest"]["message"]
    # Before 2.53 the parameters are not looked at.
    r = await detail(site, at(h, "2.52"), hypervisor_hostname_pattern="x", with_servers="1")
    assert r.status_code == 200 and "servers" not in r.json()["hypervisors"][0]


async def test_show_checks_the_id_as_nova(site, h):
    hyp = (await detail(site, at(h, "2.53"))).json()["hypervisors"][0]
    r = await site.client.get(
        f"{C}/os-hypervisors/{hyp['id']}", headers=at(h, "2.53"), params={"with_servers": "1"}
    )
    assert r.status_code == 200 and r.json()["hypervisor"]["servers"] == []
    r = await site.client.get(f"{C}/os-hypervisors/not-a-uuid", headers=at(h, "2.53"))
    assert r.status_code == 400 and r.json()["badRequest"]["message"] == "Invalid uuid not-a-uuid"
    r = await site.client.get(f"{C}/os-hypervisors/abc", headers=at(h, "2.52"))
    assert r.status_code == 404
    assert r.json()["itemNotFound"]["message"] == "Hypervisor with ID 'abc' could not be found."
    r = await site.client.get(f"{C}/os-hypervisors/1", headers=at(h, "2.52"))
    assert r.status_code == 200 and r.json()["hypervisor"]["id"] == 1
    missing = "00000000-0000-4000-8000-000000000000"
    r = await site.client.get(f"{C}/os-hypervisors/{missing}", headers=at(h, "2.53"))
    assert r.status_code == 404


async def test_uptime_is_not_known_then_gone(site, h):
    r = await site.client.get(f"{C}/os-hypervisors/1/uptime", headers=at(h, "2.52"))
    assert r.status_code == 501
    assert r.json()["notImplemented"]["message"].endswith("host uptime function.")
    r = await site.client.get(f"{C}/os-hypervisors/9/uptime", headers=at(h, "2.52"))
    assert r.status_code == 404
    hyp = (await detail(site, at(h, "2.88"))).json()["hypervisors"][0]
    r = await site.client.get(f"{C}/os-hypervisors/{hyp['id']}/uptime", headers=at(h, "2.88"))
    assert r.status_code == 404


async def test_no_aggregates(site, h):
    r = await site.client.get(f"{C}/os-aggregates", headers=h)
    assert r.status_code == 200 and r.json() == {"aggregates": []}
    r = await site.client.get(f"{C}/os-aggregates/1", headers=h)
    assert r.status_code == 404
    assert r.json()["itemNotFound"]["message"] == "Aggregate 1 could not be found."
