"""Evacuation with agents played over HTTP: a server whose host went down is rebuilt on
another host (admin, Nova's evacuate: 200); refused while its host is up; and when the
old host comes back still running the guest, the site has it destroyed there, so the
guest never runs twice."""

from __future__ import annotations

from pathlib import Path

from inventory_support import (
    AGENT,
    HOSTS,
    FakeClock,
    V,
    agent_headers,
    answer,
    boot,
    poll,
    poll_until,
    qemu_settings,
    reaches,
    signed_token,
)

from edgefed.testkit.inprocess import InProcessSite, run_site
from edgefed.testkit.wait import eventually


async def heartbeat(site: InProcessSite, headers: dict[str, str]) -> None:
    r = await site.client.post(f"{HOSTS}/agent/heartbeat", json={}, headers=headers)
    assert r.status_code == 200, r.text


async def test_a_server_of_a_host_gone_down_is_rebuilt_on_another(
    tmp_path: Path, clock: FakeClock
) -> None:
    settings = qemu_settings(tmp_path, host_heartbeat_timeout_seconds=1.0)
    async with run_site(settings, clock=clock) as site:
        edge1 = await agent_headers(site, "edge-1")
        edge2 = await agent_headers(site, "edge-2")
        server_id = await boot(site)
        spawn = None
        for owner, other in ((edge1, edge2), (edge2, edge1)):
            found = await poll(site, owner)
            if found:
                spawn = found[0]
                break
        assert spawn is not None
        assert await answer(site, owner, spawn["id"], result={"power_state": 1}) == 204
        await reaches(site, server_id, "ACTIVE")
        admin = {"X-Auth-Token": signed_token(site), **V}
        evacuate = {"evacuate": {}}
        action = f"/compute/v2.1/servers/{server_id}/action"

        r = await site.client.post(action, json=evacuate, headers=admin)
        assert r.status_code == 400 and "still in use" in r.text  # its host is up

        # The owner falls silent; the other keeps beating: the owner is down.
        clock.advance(5)
        await heartbeat(site, other)

        async def owner_down() -> bool:
            r = await site.client.get(f"{HOSTS}", headers=admin)
            hosts = {h["hostname"]: h["availability"] for h in r.json()["hosts"]}
            return hosts[owner_name] != "available"

        owner_name = "edge-1" if owner is edge1 else "edge-2"
        await eventually(owner_down, within=10, what=f"{owner_name} down")
        r = await site.client.post(action, json=evacuate, headers=admin)
        assert r.status_code == 200, r.text
        rebuilt = await poll_until(site, other)
        assert rebuilt["kind"] in ("destroy", "spawn")
        while rebuilt["kind"] != "spawn":  # whatever else comes first
            assert await answer(site, other, rebuilt["id"], result={}) == 204
            rebuilt = await poll_until(site, other)
        assert rebuilt["server_id"] == server_id
        assert await answer(site, other, rebuilt["id"], result={"power_state": 1}) == 204
        shown = await reaches(site, server_id, "ACTIVE")
        other_name = "edge-2" if owner_name == "edge-1" else "edge-1"
        assert shown["OS-EXT-SRV-ATTR:host"] == other_name

        # The old host comes back still running the guest: it is told to destroy it.
        await heartbeat(site, owner)
        r = await site.client.post(f"{AGENT}/guests", json={"guests": {server_id: 1},
                                   "full": True}, headers=owner)  # fmt: skip
        assert r.status_code == 204
        stray = await poll_until(site, owner)
        assert (stray["kind"], stray["server_id"]) == ("destroy", server_id)
        assert await answer(site, owner, stray["id"], result={}) == 204
        assert (await reaches(site, server_id, "ACTIVE"))["OS-EXT-SRV-ATTR:host"] == other_name
