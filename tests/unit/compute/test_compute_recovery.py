"""A site stopped mid-operation finishes the operation at its next start."""

from __future__ import annotations

from compute_testkit import V, boot, make_image, wait_for

from edgefed.testkit.inprocess import run_site, site_settings


async def test_build_interrupted_by_stop_completes_after_restart(tmp_path):
    slow = site_settings(tmp_path / "site", fake_transition_seconds=30.0)
    async with run_site(slow) as site:
        h = {"X-Auth-Token": await site.token(), **V}
        image_id = await make_image(site)
        created = await boot(site, h, image_id)
        r = await site.client.get(f"/compute/v2.1/servers/{created['id']}", headers=h)
        assert r.json()["server"]["status"] == "BUILD"
    fast = site_settings(tmp_path / "site", fake_transition_seconds=0.0)
    async with run_site(fast) as site:
        h = {"X-Auth-Token": await site.token(), **V}
        server = await wait_for(site, h, created["id"], "ACTIVE")
        assert server["addresses"]["default"][0]["addr"] == "10.0.0.2"
        r = await site.client.get("/compute/v2.1/servers?all_tenants=1", headers=h)
        assert len(r.json()["servers"]) == 1
