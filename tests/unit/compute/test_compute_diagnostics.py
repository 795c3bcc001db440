"""``GET /servers/{id}/diagnostics``: Nova's 2.48 shape, the older free form, who may, 409s."""

from __future__ import annotations

from typing import Any

from compute_testkit import V, boot, wait_for

from edgefed.core.ids import predictable_id
from edgefed.drivers.base import DriverError
from edgefed.services.compute.state import ComputeState
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.tokens import forge_token

C = "/compute/v2.1"
KEYS = {
    "state", "driver", "hypervisor", "hypervisor_os", "uptime", "config_drive", "num_cpus",
    "num_nics", "num_disks", "cpu_details", "nic_details", "disk_details", "memory_details",
}  # fmt: skip
NIC_KEYS = {
    "mac_address", "rx_octets", "rx_errors", "rx_drop", "rx_packets", "rx_rate",
    "tx_octets", "tx_errors", "tx_drop", "tx_packets", "tx_rate",
}  # fmt: skip
# What the QEMU driver reports (drivers/qemu/diagnostics.py), with a key Nova has not.
QEMU_LIKE: dict[str, Any] = {
    "state": "running",
    "driver": "qemu",
    "hypervisor": "qemu",
    "hypervisor_os": "linux",
    "uptime": 42,
    "config_drive": True,
    "num_cpus": 2,
    "num_disks": 1,
    "num_nics": 1,
    "cpu_details": [{"id": 0, "time": 1_500_000_000, "utilisation": None}, {"id": 1, "time": 7}],
    "memory_details": {"maximum": 512, "used": 37},
    "disk_details": [
        {
            "read_bytes": 4096,
            "read_requests": 3,
            "write_bytes": 512,
            "write_requests": 1,
            "errors_count": 0,
            "device": "virtio-disk0",
        }
    ],
    "nic_details": [
        {
            "mac_address": "fa:16:3e:00:00:01",
            "rx_octets": 900,
            "rx_packets": 9,
            "rx_errors": 0,
            "rx_drop": 0,
            "rx_rate": None,
            "tx_octets": 300,
            "tx_packets": 3,
            "tx_errors": 0,
            "tx_drop": 1,
            "tx_rate": None,
        }
    ],
}


def state_of(site: InProcessSite) -> ComputeState:
    return site.app.state.ctx.slots.require(ComputeState)


def member_of(site: InProcessSite, project: str, role: str = "member") -> dict[str, str]:
    token = forge_token(site.app.state.ctx, user=f"u-{project}", project=project, role=role)
    return {"X-Auth-Token": token, **V}


def at(headers: dict[str, str], version: str) -> dict[str, str]:
    return {**headers, "OpenStack-API-Version": f"compute {version}"}


async def diagnostics(site: InProcessSite, headers: dict[str, str], server_id: str) -> Any:
    return await site.client.get(f"{C}/servers/{server_id}/diagnostics", headers=headers)


async def active_server(site: InProcessSite, headers: dict[str, str], image_id: str) -> str:
    created = await boot(site, headers, image_id, flavorRef="2")
    await wait_for(site, headers, created["id"], "ACTIVE")
    return str(created["id"])


async def test_diagnostics_of_the_fake_in_nova_248_shape(site, h, image_id):
    sid = await active_server(site, h, image_id)
    r = await diagnostics(site, h, sid)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == KEYS
    assert body["state"] == "running" and body["driver"] == "fake"
    assert body["hypervisor"] == "fake" and body["hypervisor_os"] is None
    assert body["num_cpus"] == 1 and body["num_disks"] == 0 and body["num_nics"] == 0
    assert body["memory_details"] == {"maximum": 2048, "used": 0}
    assert body["cpu_details"] == body["disk_details"] == body["nic_details"] == []
    assert body["config_drive"] is False
    assert isinstance(body["uptime"], int) and body["uptime"] >= 0
    assert r.headers["OpenStack-API-Version"] == "compute 2.96"


async def test_diagnostics_from_real_counters_both_shapes(site, h, image_id, monkeypatch):
    sid = await active_server(site, h, image_id)

    async def qemu_like(instance_id: str) -> dict[str, Any]:
        assert instance_id == sid
        return QEMU_LIKE

    monkeypatch.setattr(state_of(site).driver, "diagnostics", qemu_like)
    body = (await diagnostics(site, at(h, "2.48"), sid)).json()
    assert set(body) == KEYS
    assert body["uptime"] == 42 and body["config_drive"] is True and body["driver"] == "qemu"
    assert body["cpu_details"] == [
        {"id": 0, "time": 1_500_000_000, "utilisation": None},
        {"id": 1, "time": 7, "utilisation": None},
    ]
    assert body["disk_details"] == [
        {
            "read_bytes": 4096,
            "read_requests": 3,
            "write_bytes": 512,
            "write_requests": 1,
            "errors_count": 0,
        }
    ]
    assert set(body["nic_details"][0]) == NIC_KEYS
    assert body["nic_details"][0]["tx_drop"] == 1
    assert body["memory_details"] == {"maximum": 512, "used": 37}
    # Before 2.48: libvirt's free form, from the same figures.
    for version in ("2.1", "2.47"):
        legacy = (await diagnostics(site, at(h, version), sid)).json()
        assert legacy == {
            "cpu0_time": 1_500_000_000,
            "cpu1_time": 7,
            "vda_read": 4096,
            "vda_read_req": 3,
            "vda_write": 512,
            "vda_write_req": 1,
            "vda_errors": 0,
            "vnet0_rx": 900,
            "vnet0_rx_packets": 9,
            "vnet0_rx_errors": 0,
            "vnet0_rx_drop": 0,
            "vnet0_tx": 300,
            "vnet0_tx_packets": 3,
            "vnet0_tx_errors": 0,
            "vnet0_tx_drop": 1,
            "memory": 512 * 1024,
            "memory-rss": 37 * 1024,
        }


async def test_diagnostics_survive_a_driver_that_says_nonsense(site, h, image_id, monkeypatch):
    sid = await active_server(site, h, image_id)

    async def nonsense(instance_id: str) -> dict[str, Any]:
        return {
            "state": "weird",
            "driver": 7,
            "uptime": "long",
            "cpu_details": ["x", {"id": "0", "time": 1.5}],
            "nic_details": {"not": "a list"},
            "memory_details": [],
        }

    monkeypatch.setattr(state_of(site).driver, "diagnostics", nonsense)
    r = await diagnostics(site, h, sid)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["state"] == "running" and body["driver"] == "fake"
    assert body["cpu_details"] == [
        {"id": None, "time": None, "utilisation": None},
        {"id": None, "time": 1, "utilisation": None},
    ]
    assert body["nic_details"] == [] and body["memory_details"] == {"maximum": 2048, "used": None}


async def test_diagnostics_are_for_admins(site, h, image_id):
    alpha = predictable_id("project", "alpha")
    sid = await active_server(site, member_of(site, alpha), image_id)
    r = await diagnostics(site, member_of(site, alpha), sid)
    assert r.status_code == 403
    assert "os_compute_api:os-server-diagnostics" in r.json()["forbidden"]["message"]
    r = await diagnostics(site, member_of(site, predictable_id("project", "beta")), sid)
    assert r.status_code == 404
    assert r.json()["itemNotFound"]["message"] == f"Instance {sid} could not be found."
    missing = predictable_id("server", "missing")
    r = await diagnostics(site, h, missing)
    assert r.status_code == 404
    assert (await diagnostics(site, h, sid)).status_code == 200


async def test_diagnostics_409_unless_running(site, h, image_id, monkeypatch):
    sid = await active_server(site, h, image_id)
    for action, status, power in (
        ("pause", "PAUSED", "paused"),
        ("unpause", "ACTIVE", None),
        ("suspend", "SUSPENDED", "suspended"),
        ("resume", "ACTIVE", None),
        ("os-stop", "SHUTOFF", "shutdown"),
    ):
        r = await site.client.post(f"{C}/servers/{sid}/action", json={action: None}, headers=h)
        assert r.status_code == 202, r.text
        await wait_for(site, h, sid, status)
        r = await diagnostics(site, h, sid)
        if power is None:
            assert r.status_code == 200
            continue
        assert r.status_code == 409
        assert r.json()["conflictingRequest"]["message"] == (
            f"Cannot 'get_diagnostics' instance {sid} while it is in power state {power}"
        )
    r = await site.client.post(f"{C}/servers/{sid}/action", json={"os-start": None}, headers=h)
    await wait_for(site, h, sid, "ACTIVE")

    async def gone(instance_id: str) -> dict[str, Any]:
        raise DriverError(f"guest {instance_id} is not known to this hypervisor")

    monkeypatch.setattr(state_of(site).driver, "diagnostics", gone)
    r = await diagnostics(site, h, sid)
    assert r.status_code == 409
    assert "is not known to this hypervisor" in r.json()["conflictingRequest"]["message"]


async def test_diagnostics_409_before_a_host(site, h, image_id):
    project = site.app.state.authenticator.validate(site.app.state.ctx, h["X-Auth-Token"])
    r = await site.client.put(
        f"{C}/os-quota-sets/{project.project_id}", json={"quota_set": {"ram": -1}}, headers=h
    )
    assert r.status_code == 200
    body = {"flavor": {"name": "huge", "ram": 10**7, "vcpus": 1, "disk": 1}}
    flavor = (await site.client.post(f"{C}/flavors", json=body, headers=h)).json()["flavor"]
    created = await boot(site, h, image_id, flavorRef=flavor["id"])
    await wait_for(site, h, created["id"], "ERROR")
    r = await diagnostics(site, h, created["id"])
    assert r.status_code == 409
    assert r.json()["conflictingRequest"]["message"] == f"Instance {created['id']} is not ready"
