"""Host agents: one-time enrollment tokens, per-host credentials, heartbeats, and hosts
marked down when their heartbeats stop (driven by the site's fake clock)."""

from __future__ import annotations

from pathlib import Path

from inventory_support import signed_token

from edgefed.agent import hardware

HOSTS = "/edge/v1/hosts"
HW = {"cpus": 8, "memory_mb": 16384, "disks": [{"name": "sda", "size_gb": 240}], "nics": []}


def sign_reader(site):
    return signed_token(site, roles=("reader",))


async def new_token(site, admin, **body):
    r = await site.client.post(f"{HOSTS}/enrollment-tokens", json=body, headers=admin)
    assert r.status_code == 201, r.text
    return r.json()["enrollment_token"]["token"]


async def enroll(site, token, hostname="edge-7", hw=HW):
    return await site.client.post(
        f"{HOSTS}/agent/enroll",
        json={"enrollment_token": token, "hostname": hostname, "hardware": hw},
    )


async def test_enrollment_token_is_one_time_and_hardware_appears(inv_site, admin):
    token = await new_token(inv_site, admin, personality="edgeworker")
    r = await enroll(inv_site, token)
    assert r.status_code == 201, r.text
    host = r.json()["host"]
    assert host["personality"] == "edgeworker"
    assert host["availability"] == "available"
    assert host["capacity"] == {"vcpus": 8, "memory_mb": 16384, "disk_gb": 240}
    assert host["mgmt_ip"] == "192.168.204.10"
    r = await enroll(inv_site, token, hostname="edge-8")
    assert r.status_code == 401
    assert "already been used" in r.json()["error"]["message"]
    tokens = (await inv_site.client.get(f"{HOSTS}/enrollment-tokens", headers=admin)).json()
    assert [t["state"] for t in tokens["enrollment_tokens"]] == ["used"]
    assert "token" not in tokens["enrollment_tokens"][0]


async def test_bad_expired_and_mismatched_tokens_are_refused(inv_site, admin, clock):
    assert (await enroll(inv_site, "edgefed-het-nonsense")).status_code == 401
    token = await new_token(inv_site, admin, ttl_seconds=60)
    clock.advance(61)
    r = await enroll(inv_site, token)
    assert r.status_code == 401 and "expired" in r.json()["error"]["message"]
    token = await new_token(inv_site, admin, hostname="edge-1")
    r = await enroll(inv_site, token, hostname="edge-2")
    assert r.status_code == 403 and "edge-1" in r.json()["error"]["message"]
    r = await enroll(inv_site, token, hostname="Not_Valid")
    assert r.status_code == 400 and "RFC 1123" in r.json()["error"]["message"]


async def test_heartbeats_need_the_host_credential(inv_site, admin):
    token = await new_token(inv_site, admin, personality="worker")
    credential = (await enroll(inv_site, token)).json()["credential"]
    r = await inv_site.client.post(f"{HOSTS}/agent/heartbeat", json={})
    assert r.status_code == 401
    host_id = credential.split(".")[0]
    r = await inv_site.client.post(
        f"{HOSTS}/agent/heartbeat", json={}, headers={"X-Host-Credential": f"{host_id}.forged"}
    )
    assert r.status_code == 401
    hw = dict(HW, cpus=16)
    r = await inv_site.client.post(
        f"{HOSTS}/agent/heartbeat", json={"hardware": hw}, headers={"X-Host-Credential": credential}
    )
    assert r.status_code == 200
    assert r.json()["host"]["capacity"]["vcpus"] == 16


async def test_silent_host_is_marked_down_and_recovers(inv_site, admin, clock):
    token = await new_token(inv_site, admin, personality="worker")
    credential = (await enroll(inv_site, token, hostname="w1")).json()["credential"]
    token = await new_token(inv_site, admin, personality="worker")
    credential2 = (await enroll(inv_site, token, hostname="w2")).json()["credential"]
    inventory = inv_site.app.state.ctx
    from edgefed.services.inventory.operations import HostInventory

    clock.advance(20)
    beat = {"X-Host-Credential": credential2}
    assert (
        await inv_site.client.post(f"{HOSTS}/agent/heartbeat", json={}, headers=beat)
    ).is_success
    clock.advance(15)  # w1 silent for 35 s > 30 s; w2 for 15 s
    down = await HostInventory(inventory).mark_silent_hosts_down()
    assert [h.hostname for h in down] == ["w1"]
    shown = (await inv_site.client.get(f"{HOSTS}/w1", headers=admin)).json()["host"]
    assert shown["availability"] == "down"
    shown = (await inv_site.client.get(f"{HOSTS}/w2", headers=admin)).json()["host"]
    assert shown["availability"] == "available"
    beat = {"X-Host-Credential": credential}
    assert (
        await inv_site.client.post(f"{HOSTS}/agent/heartbeat", json={}, headers=beat)
    ).is_success
    shown = (await inv_site.client.get(f"{HOSTS}/w1", headers=admin)).json()["host"]
    assert shown["availability"] == "available"


async def test_admin_added_host_enrolls_and_keeps_its_personality(inv_site, admin):
    r = await inv_site.client.post(
        HOSTS, json={"hostname": "e1", "personality": "edgeworker"}, headers=admin
    )
    ip = r.json()["host"]["mgmt_ip"]
    token = await new_token(inv_site, admin, hostname="e1")
    host = (await enroll(inv_site, token, hostname="e1")).json()["host"]
    assert host["personality"] == "edgeworker" and host["mgmt_ip"] == ip
    assert host["agent_enrolled"] is True
    r = await inv_site.client.delete(f"{HOSTS}/e1/agent", headers=admin)
    assert r.status_code == 200 and r.json()["host"]["agent_enrolled"] is False
    token = await new_token(inv_site, admin, hostname="e1", personality="worker")
    r = await enroll(inv_site, token, hostname="e1")
    assert r.status_code == 409 and "edgeworker" in r.json()["error"]["message"]


def test_hardware_report_reads_proc_sys_and_os_release(tmp_path: Path):
    root = tmp_path
    (root / "proc").mkdir()
    (root / "proc/cpuinfo").write_text("processor\t: 0\nmodel\t: x\n\nprocessor\t: 1\n")
    (root / "proc/meminfo").write_text("MemTotal:       8388608 kB\nMemFree: 1 kB\n")
    for dev, size in [("sda", 2 * 2**30 // 512 * 100), ("loop0", 100)]:
        (root / "sys/block" / dev).mkdir(parents=True)
        (root / "sys/block" / dev / "size").write_text(f"{size}\n")
    (root / "sys/class/net/eth0").mkdir(parents=True)
    (root / "sys/class/net/eth0/address").write_text("52:54:00:12:34:56\n")
    (root / "sys/class/net/eth0/mtu").write_text("1500\n")
    (root / "etc").mkdir()
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian 12"\n')
    report = hardware.collect(root)
    assert report["cpus"] == 2
    assert report["memory_mb"] == 8192
    assert report["disks"] == [{"name": "sda", "size_gb": 200.0}]
    assert report["nics"][0]["mac"] == "52:54:00:12:34:56"
    assert report["os"] == {"id": "debian", "version_id": "12", "pretty_name": "Debian 12"}


async def test_agents_enrolling_at_once_get_distinct_management_addresses(inv_site, admin):
    import asyncio

    # The fixture's address pool holds three.
    tokens = [await new_token(inv_site, admin, personality="edgeworker") for _ in range(3)]
    answers = await asyncio.gather(
        *(enroll(inv_site, t, hostname=f"edge-{n}") for n, t in enumerate(tokens))
    )
    assert [r.status_code for r in answers] == [201] * 3, [r.text for r in answers]
    addresses = {r.json()["host"]["mgmt_ip"] for r in answers}
    assert len(addresses) == 3


async def test_an_enrollment_token_takes_over_no_enrolled_host(inv_site, admin):
    """A stolen or left-over token must not give its holder an existing host's identity."""
    enrolled = await enroll(inv_site, await new_token(inv_site, admin), hostname="w1")
    victim = enrolled.json()["host"]
    credential = enrolled.json()["credential"]
    # A token for any host enrolls new hosts only: not w1, and no hostname shaped like an
    # id (hosts are found by id or hostname: it would shadow w1).
    token = await new_token(inv_site, admin)
    r = await enroll(inv_site, token, hostname="w1")
    assert r.status_code == 409 and "already exists" in r.json()["error"]["message"]
    r = await enroll(inv_site, token, hostname=victim["id"])
    assert r.status_code == 400 and "shaped like a host id" in r.text
    # Even a token made for w1 does not replace the agent it has: re-enrolling is refused.
    bound = await new_token(inv_site, admin, hostname="w1")
    r = await enroll(inv_site, bound, hostname="w1")
    assert r.status_code == 409 and "already has an enrolled agent" in r.text
    # w1 keeps its identity and its credential works.
    beat = {"X-Host-Credential": credential}
    r = await inv_site.client.post(f"{HOSTS}/agent/heartbeat", json={}, headers=beat)
    assert r.status_code == 200 and r.json()["host"]["id"] == victim["id"]
    # The operator resets the agent: the token made for w1 enrolls it (the old credential dies).
    r = await inv_site.client.delete(f"{HOSTS}/w1/agent", headers=admin)
    assert r.status_code == 200
    r = await enroll(inv_site, bound, hostname="w1")
    assert r.status_code == 201 and r.json()["host"]["id"] == victim["id"]
    r = await inv_site.client.post(f"{HOSTS}/agent/heartbeat", json={}, headers=beat)
    assert r.status_code == 401
    # Resetting needs an admin.
    reader = {"X-Auth-Token": sign_reader(inv_site)}
    assert (await inv_site.client.delete(f"{HOSTS}/w1/agent", headers=reader)).status_code == 403
