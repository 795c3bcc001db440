"""Servers: boot to ACTIVE with an address, stop/start/reboot, delete."""

from __future__ import annotations

from compute_testkit import boot, wait_for


async def test_boot_stop_start_delete(site, h, image_id):
    created = await boot(site, h, image_id)
    server = await wait_for(site, h, created["id"], "ACTIVE")
    assert server["addresses"]["default"][0]["addr"] == "10.0.0.2"
    assert server["flavor"]["original_name"] == "m1.tiny"
    r = await site.client.post(
        f"/compute/v2.1/servers/{created['id']}/action", json={"os-stop": None}, headers=h
    )
    assert r.status_code == 202, r.text
    await wait_for(site, h, created["id"], "SHUTOFF")
    r = await site.client.post(
        f"/compute/v2.1/servers/{created['id']}/action", json={"os-start": None}, headers=h
    )
    assert r.status_code == 202, r.text
    await wait_for(site, h, created["id"], "ACTIVE")
    r = await site.client.delete(f"/compute/v2.1/servers/{created['id']}", headers=h)
    assert r.status_code == 204
    await wait_for(site, h, created["id"], "DELETED")
