"""What Paris refuses at the offer besides a flavor, a network and the quota
(test_relocation.py): a server whose hypervisor it does not run, and one it has no
room for. Each is a 4xx at Berlin's action naming the reason; the server runs on at
Berlin and neither site records a move."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from relocation_support import NOVA, C, active_server, relocate

from edgefed.services.compute.state import ComputeState
from edgefed.store.compute import Relocations
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import admin, ctx_of, fleet


async def nothing_moved(berlin: InProcessSite, paris: InProcessSite, server_id: str) -> None:
    server = await ctx_of(berlin).slots.require(ComputeState).servers.get(server_id)
    assert server is not None and (server.vm_state, server.task_state) == ("active", None)
    assert await Relocations(ctx_of(berlin).store).list() == []
    assert await Relocations(ctx_of(paris).store).list() == []


async def test_a_hypervisor_paris_does_not_run_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h = {**admin(berlin), **NOVA}
        server_id = await active_server(berlin, h)
        driver = ctx_of(berlin).slots.require(ComputeState).driver
        shown = driver.hypervisor
        monkeypatch.setattr(  # Berlin's host runs Xen guests
            driver,
            "hypervisor",
            lambda host: dataclasses.replace(shown(host), hypervisor_type="Xen"),
        )
        r = await relocate(berlin, h, server_id)
        assert r.status_code == 400, r.text
        assert "Site Paris runs fake guests; this server needs a Xen hypervisor." in r.text
        await nothing_moved(berlin, paris, server_id)


async def test_a_server_paris_has_no_room_for_is_refused(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h = {**admin(berlin), **NOVA}
        # A flavor of most of a host's RAM (128 GiB, ratio 1.0), at both sites; Paris
        # runs one server of it already.
        big = {"flavor": {"name": "big", "ram": 100000, "vcpus": 1, "disk": 1, "id": "big"}}
        for site in (berlin, paris):
            r = await site.client.post(f"{C}/flavors", json=big, headers={**admin(site), **NOVA})
            assert r.status_code == 200, r.text
            r = await site.client.get("/identity/v3/projects?name=admin", headers=admin(site))
            project = r.json()["projects"][0]["id"]
            r = await site.client.put(f"{C}/os-quota-sets/{project}",
                                      json={"quota_set": {"ram": -1}},
                                      headers={**admin(site), **NOVA})  # fmt: skip
            assert r.status_code == 200, r.text
        await active_server(paris, {**admin(paris), **NOVA}, flavorRef="big")
        server_id = await active_server(berlin, h, flavorRef="big")
        r = await relocate(berlin, h, server_id)
        assert r.status_code == 409, r.text
        assert "Site Paris has no room for the server:" in r.text and "100000 MB RAM" in r.text
        await nothing_moved(berlin, paris, server_id)
