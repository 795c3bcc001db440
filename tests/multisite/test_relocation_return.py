"""A server goes back to a site it left: Berlin → Paris → Berlin (→ Paris), sites in
this process on the fake driver. The deleted row a site keeps of a server that left (for
its redirect) is replaced by the server arriving again; the redirect is then at the
site it left last, pointing at where it runs."""

from __future__ import annotations

from pathlib import Path

from relocation_support import DISK, NOVA, C, active_server, status_is

from edgefed.store.compute import Relocations
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import admin, ctx_of, fleet
from edgefed.testkit.wait import eventually


async def move(source: InProcessSite, server_id: str, site: str) -> None:
    h = {**admin(source), **NOVA}
    body = {"os-edge:relocate": {"site": site}}
    r = await source.client.post(f"{C}/servers/{server_id}/action", json=body, headers=h)
    assert r.status_code == 202, r.text

    async def done() -> bool:
        r = await source.client.get(f"{C}/servers/{server_id}/os-edge-relocations", headers=h)
        last = r.json()["relocations"][-1]
        assert last["phase"] != "failed", last
        return bool(last["phase"] == "done")

    await eventually(done, within=60, every=0.01, what=f"the move to {site}")


async def runs_at(site: InProcessSite, left: InProcessSite, server_id: str) -> None:
    """The server is ACTIVE at ``site``; ``left`` redirects its show there."""
    h = {**admin(site), **NOVA}
    await status_is(site, h, server_id, "ACTIVE")
    shown = (await site.client.get(f"{C}/servers/{server_id}", headers=h)).json()["server"]
    assert shown["name"] == "shop" and shown["metadata"] == {"till": "3"}
    r = await left.client.get(f"{C}/servers/{server_id}", headers={**admin(left), **NOVA})
    assert r.status_code == 301
    name = ctx_of(site).name.lower()
    assert r.headers["location"] == f"http://{name}.test/compute/v2.1/servers/{server_id}"
    listed = (await left.client.get(f"{C}/servers", headers={**admin(left), **NOVA})).json()
    assert server_id not in [x["id"] for x in listed["servers"]]


async def test_a_server_returns_to_the_site_it_left(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h = {**admin(berlin), **NOVA}
        server_id = await active_server(berlin, h)

        await move(berlin, server_id, "Paris")
        await runs_at(paris, berlin, server_id)
        await move(paris, server_id, "Berlin")  # was 409 "Site Berlin already has a server"
        await runs_at(berlin, paris, server_id)
        r = await berlin.client.get(f"{C}/servers/{server_id}/os-edge-relocations", headers=h)
        assert [(x["direction"], x["site"], x["phase"]) for x in r.json()["relocations"]] == [
            ("out", "Paris", "done"),
            ("in", "Paris", "done"),
        ]
        r = await berlin.client.get(f"{C}/servers/{server_id}/os-instance-actions", headers=h)
        assert "relocate" in [a["action"] for a in r.json()["instanceActions"]]

        await move(berlin, server_id, "Paris")  # and off again: Paris's row replaced too
        await runs_at(paris, berlin, server_id)
        moves = await Relocations(ctx_of(paris).store).list(server_id=server_id)
        assert [(x.direction, x.phase) for x in moves] == [
            ("in", "done"),
            ("out", "done"),
            ("in", "done"),
        ]
        assert moves[-1].disk_size == len(DISK)
