"""The inventory API's validation rules, each answered with a 4xx that names the rule."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from edgefed.testkit.inprocess import InProcessSite

HOSTS = "/edge/v1/hosts"


def message(r: httpx.Response) -> str:
    return str(r.json()["error"]["message"])


async def add(site: InProcessSite, headers: dict[str, str], **body: Any) -> httpx.Response:
    return await site.client.post(HOSTS, json=body, headers=headers)


async def test_add_worker_allocates_lowest_free_mgmt_ip(inv_site, admin):
    r = await add(inv_site, admin, hostname="Worker-1", personality="worker")
    assert r.status_code == 201, r.text
    host = r.json()["host"]
    assert host["hostname"] == "worker-1"
    assert host["personality"] == "worker"
    assert host["mgmt_ip"] == "192.168.204.10"
    assert host["administrative"] == "locked"
    r = await add(inv_site, admin, hostname="edge-1", personality="edgeworker")
    assert r.json()["host"]["mgmt_ip"] == "192.168.204.11"
    listed = (await inv_site.client.get(HOSTS, headers=admin)).json()["hosts"]
    assert [h["hostname"] for h in listed] == ["edge-1", "worker-1"]
    shown = await inv_site.client.get(f"{HOSTS}/edge-1", headers=admin)
    assert shown.json()["host"]["personality"] == "edgeworker"


async def test_dynamic_pool_never_gives_an_address_twice_and_reports_exhaustion(inv_site, admin):
    ips = []
    for i in range(3):
        r = await add(inv_site, admin, hostname=f"w{i}", personality="worker")
        assert r.status_code == 201
        ips.append(r.json()["host"]["mgmt_ip"])
    assert len(set(ips)) == 3
    r = await add(inv_site, admin, hostname="w3", personality="worker")
    assert r.status_code == 409
    assert "pool" in message(r) and "exhausted" in message(r)
    # A deleted host gives its address back.
    await inv_site.client.delete(f"{HOSTS}/w1", headers=admin)
    r = await add(inv_site, admin, hostname="w3", personality="worker")
    assert r.json()["host"]["mgmt_ip"] == ips[1]


async def test_dynamic_network_refuses_a_given_mgmt_ip(inv_site, admin):
    r = await add(inv_site, admin, hostname="w1", personality="worker", mgmt_ip="192.168.204.50")
    assert r.status_code == 400
    assert "dynamic" in message(r) and "mgmt_ip" in message(r)


@pytest.mark.parametrize(
    ("mgmt_ip", "status", "words"),
    [
        (None, 400, "required"),
        ("10.9.1.5", 400, "not in the management network"),
        ("10.9.0.0", 400, "network or broadcast"),
        ("10.9.0.255", 400, "network or broadcast"),
        ("not-an-ip", 400, "not an IP address"),
    ],
)
async def test_static_network_checks_mgmt_ip(static_site, static_admin, mgmt_ip, status, words):
    body: dict[str, Any] = {"hostname": "w1", "personality": "worker"}
    if mgmt_ip is not None:
        body["mgmt_ip"] = mgmt_ip
    r = await add(static_site, static_admin, **body)
    assert r.status_code == status, r.text
    assert words in message(r)
    assert "mgmt_ip" in message(r)


async def test_static_network_refuses_an_address_twice(static_site, static_admin):
    r = await add(
        static_site, static_admin, hostname="w1", personality="worker", mgmt_ip="10.9.0.5"
    )
    assert r.status_code == 201
    r = await add(
        static_site, static_admin, hostname="w2", personality="worker", mgmt_ip="10.9.0.5"
    )
    assert r.status_code == 409
    assert "already assigned" in message(r)


@pytest.mark.parametrize(
    "hostname",
    ["-edge", "edge-", "ed_ge", "a" * 64, "edge..one", "123", "", "bad name", "x" * 64 + ".com"],
)
async def test_hostname_must_be_rfc1123(inv_site, admin, hostname):
    r = await add(inv_site, admin, hostname=hostname, personality="worker")
    assert r.status_code == 400, r.text
    assert "hostname" in message(r)
    assert "RFC 1123" in message(r)


async def test_hostname_is_unique_case_insensitively(inv_site, admin):
    assert (
        await add(inv_site, admin, hostname="edge-1", personality="edgeworker")
    ).status_code == 201
    r = await add(inv_site, admin, hostname="EDGE-1", personality="worker")
    assert r.status_code == 409
    assert "already exists" in message(r)


async def test_unknown_personality_is_refused(inv_site, admin):
    r = await add(inv_site, admin, hostname="n1", personality="edge-worker")
    assert r.status_code == 400
    assert "personality" in message(r) and "edgeworker" in message(r)


async def test_controllers_are_named_controller_0_or_1(inv_site, admin):
    r = await add(inv_site, admin, hostname="ctl", personality="controller")
    assert r.status_code == 400
    assert "controller-0 or controller-1" in message(r)
    r = await add(inv_site, admin, hostname="controller-0", personality="worker")
    assert r.status_code == 400
    assert "reserved for controllers" in message(r)
    assert (
        await add(inv_site, admin, hostname="controller-0", personality="controller")
    ).status_code == 201


async def test_edgeworker_refuses_bmc_on_add_and_update(inv_site, admin):
    r = await add(
        inv_site, admin, hostname="e1", personality="edgeworker", bm_type="ipmi", bm_ip="10.0.0.9"
    )
    assert r.status_code == 400
    assert "BMC" in message(r) and "edgeworker" in message(r)
    assert (await add(inv_site, admin, hostname="e1", personality="edgeworker")).status_code == 201
    r = await inv_site.client.patch(f"{HOSTS}/e1", json={"bm_type": "redfish"}, headers=admin)
    assert r.status_code == 400
    assert "BMC" in message(r)
    # A worker may have a BMC.
    r = await add(inv_site, admin, hostname="w1", personality="worker", bm_type="ipmi")
    assert r.status_code == 201
    assert r.json()["host"]["bm_type"] == "ipmi"


async def test_unknown_bm_type_is_refused(inv_site, admin):
    r = await add(inv_site, admin, hostname="w1", personality="worker", bm_type="ilo9")
    assert r.status_code == 400
    assert "bm_type" in message(r)


async def test_edgeworker_refuses_host_upgrade(inv_site, admin):
    await add(inv_site, admin, hostname="e1", personality="edgeworker")
    r = await inv_site.client.post(f"{HOSTS}/e1/upgrade", json={"load": "2.0"}, headers=admin)
    assert r.status_code == 409
    assert "host-upgrade is not supported on edgeworker" in message(r)
    await add(inv_site, admin, hostname="w1", personality="worker")
    r = await inv_site.client.post(f"{HOSTS}/w1/upgrade", json={"load": "2.0"}, headers=admin)
    assert r.status_code == 200
    assert r.json()["host"]["target_load"] == "2.0"


async def test_upgrade_needs_a_locked_host(inv_site, admin):
    await add(inv_site, admin, hostname="w1", personality="worker")
    await inv_site.client.post(f"{HOSTS}/w1/unlock", headers=admin)
    r = await inv_site.client.post(f"{HOSTS}/w1/upgrade", json={"load": "2.0"}, headers=admin)
    assert r.status_code == 409
    assert "locked" in message(r)


async def test_worker_may_become_edgeworker_only_while_locked(inv_site, admin):
    await add(inv_site, admin, hostname="w1", personality="worker")
    await inv_site.client.post(f"{HOSTS}/w1/unlock", headers=admin)
    r = await inv_site.client.patch(
        f"{HOSTS}/w1", json={"personality": "edgeworker"}, headers=admin
    )
    assert r.status_code == 409
    assert "locked" in message(r)
    await inv_site.client.post(f"{HOSTS}/w1/lock", headers=admin)
    r = await inv_site.client.patch(
        f"{HOSTS}/w1", json={"personality": "edgeworker"}, headers=admin
    )
    assert r.status_code == 200
    assert r.json()["host"]["personality"] == "edgeworker"


@pytest.mark.parametrize(
    ("start", "hostname", "new"),
    [
        ("edgeworker", "e1", "worker"),
        ("storage", "s1", "worker"),
        ("worker", "w1", "storage"),
        ("controller", "controller-1", "edgeworker"),
    ],
)
async def test_other_personality_changes_are_refused(inv_site, admin, start, hostname, new):
    await add(inv_site, admin, hostname=hostname, personality=start)
    r = await inv_site.client.patch(f"{HOSTS}/{hostname}", json={"personality": new}, headers=admin)
    assert r.status_code == 409
    assert f"cannot be changed from {start} to {new}" in message(r)


async def test_worker_with_bmc_must_clear_it_before_becoming_edgeworker(inv_site, admin):
    await add(inv_site, admin, hostname="w1", personality="worker", bm_type="ipmi")
    r = await inv_site.client.patch(
        f"{HOSTS}/w1", json={"personality": "edgeworker"}, headers=admin
    )
    assert r.status_code == 400
    assert "clear bm_type" in message(r)
    r = await inv_site.client.patch(
        f"{HOSTS}/w1", json={"personality": "edgeworker", "bm_type": None}, headers=admin
    )
    assert r.status_code == 200, r.text
    assert r.json()["host"]["bm_type"] is None


async def test_lock_unlock_and_delete_rules(inv_site, admin):
    await add(inv_site, admin, hostname="w1", personality="worker")
    r = await inv_site.client.post(f"{HOSTS}/w1/lock", headers=admin)
    assert r.status_code == 409 and "already locked" in message(r)
    r = await inv_site.client.post(f"{HOSTS}/w1/unlock", headers=admin)
    assert r.json()["host"]["administrative"] == "unlocked"
    r = await inv_site.client.post(f"{HOSTS}/w1/unlock", headers=admin)
    assert r.status_code == 409 and "already unlocked" in message(r)
    r = await inv_site.client.delete(f"{HOSTS}/w1", headers=admin)
    assert r.status_code == 409 and "lock it before deleting" in message(r)
    r = await inv_site.client.patch(f"{HOSTS}/w1", json={"hostname": "w9"}, headers=admin)
    assert r.status_code == 409 and "locked" in message(r)
    await inv_site.client.post(f"{HOSTS}/w1/lock", headers=admin)
    assert (await inv_site.client.delete(f"{HOSTS}/w1", headers=admin)).status_code == 204
    r = await inv_site.client.get(f"{HOSTS}/w1", headers=admin)
    assert r.status_code == 404


async def test_labels_follow_kubernetes_rules(inv_site, admin):
    await add(inv_site, admin, hostname="e1", personality="edgeworker")
    r = await inv_site.client.post(
        f"{HOSTS}/e1/labels",
        json={"labels": {"site.example/zone": "a-1", "gpu": ""}},
        headers=admin,
    )
    assert r.status_code == 200
    assert r.json()["host"]["labels"] == {"site.example/zone": "a-1", "gpu": ""}
    for key, value in [("-bad", "x"), ("ok", "bad value"), ("UP/x", "y"), ("k", "x" * 64)]:
        r = await inv_site.client.post(
            f"{HOSTS}/e1/labels", json={"labels": {key: value}}, headers=admin
        )
        assert r.status_code == 400, (key, value)
        assert "Kubernetes label" in message(r)
    r = await inv_site.client.post(f"{HOSTS}/e1/labels", json={"remove": ["gpu"]}, headers=admin)
    assert r.json()["host"]["labels"] == {"site.example/zone": "a-1"}
    r = await inv_site.client.post(f"{HOSTS}/e1/labels", json={"remove": ["gpu"]}, headers=admin)
    assert r.status_code == 404


async def test_static_mgmt_ip_change_checked_like_add(static_site, static_admin):
    await add(static_site, static_admin, hostname="w1", personality="worker", mgmt_ip="10.9.0.5")
    await add(static_site, static_admin, hostname="w2", personality="worker", mgmt_ip="10.9.0.6")
    r = await static_site.client.patch(
        f"{HOSTS}/w2", json={"mgmt_ip": "10.9.0.5"}, headers=static_admin
    )
    assert r.status_code == 409
    r = await static_site.client.patch(
        f"{HOSTS}/w2", json={"mgmt_ip": "10.9.0.7"}, headers=static_admin
    )
    assert r.status_code == 200 and r.json()["host"]["mgmt_ip"] == "10.9.0.7"


async def test_bad_bodies_name_the_field(inv_site, admin):
    r = await inv_site.client.post(HOSTS, json={"personality": "worker"}, headers=admin)
    assert r.status_code == 400 and "hostname" in message(r)
    r = await add(inv_site, admin, hostname="w1", personality="worker", colour="red")
    assert r.status_code == 400 and "colour" in message(r)
    r = await add(inv_site, admin, hostname="w1", personality="worker", cpu_allocation_ratio=0)
    assert r.status_code == 400 and "cpu_allocation_ratio" in message(r)


async def test_inventory_needs_an_admin(inv_site, sign):
    r = await inv_site.client.get(HOSTS)
    assert r.status_code == 401
    member = {"X-Auth-Token": sign(inv_site, roles=("member", "reader"))}
    r = await inv_site.client.get(HOSTS, headers=member)
    assert r.status_code == 403
    assert "admin" in message(r)
