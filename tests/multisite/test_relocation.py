"""A server relocated from Berlin to Paris (cold), sites in this process on the fake
driver: Paris checks the offer with the caller's token and refuses what it cannot run
(4xx naming it, nothing stopped at Berlin); the disk arrives in chunks, whole and
hash-checked; the server has the same id at Paris, is ACTIVE there, and Berlin says
where it went. A cut in the middle of the disk resumes where Paris's bytes end; a
runner that stops mid-move (a restart) takes it up from its journal; a failure before
the commit leaves the server running at Berlin."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
from pathlib import Path

import pytest
from relocation_support import (
    DISK,
    NOVA,
    C,
    ChunkCounter,
    active_server,
    hours_pass,
    journal,
    moved,
    outgoing_failed,
    relocate,
    stall,
    status_is,
)

from edgefed.core.ids import predictable_id
from edgefed.drivers.base import PowerState
from edgefed.drivers.fake import FakeDriver
from edgefed.services.compute.relocation_out import Relocator
from edgefed.services.compute.state import ComputeState
from edgefed.services.volume.state import VolumeState
from edgefed.store.compute import Relocations
from edgefed.store.image import ImageRepository, blob_path
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import admin, ctx_of, fleet


async def test_a_server_moves_to_paris_with_its_disk_and_keeps_its_id(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h, at_paris = {**admin(berlin), **NOVA}, {**admin(paris), **NOVA}
        server_id = await active_server(berlin, h)

        r = await relocate(berlin, h, server_id, "Paris")
        assert r.status_code == 202, r.text
        assert r.json()["relocation"]["site"] == "Paris"
        record = await moved(berlin, h, server_id)
        assert record["bytes_done"] == record["bytes_total"] == len(DISK)

        await status_is(paris, at_paris, server_id, "ACTIVE")
        shown = (await paris.client.get(f"{C}/servers/{server_id}", headers=at_paris)).json()
        assert shown["server"]["name"] == "shop" and shown["server"]["metadata"] == {"till": "3"}
        image = await ImageRepository(ctx_of(paris).store).get(shown["server"]["image"]["id"])
        assert image is not None and image.os_hidden and image.visibility == "private"
        data = blob_path(paris.settings.data_dir, image).read_bytes()
        assert hashlib.sha256(data).digest() == hashlib.sha256(DISK).digest()

        gone = await berlin.client.get(f"{C}/servers/{server_id}", headers=h)
        assert gone.status_code == 301  # its show is at Paris now
        assert gone.headers["location"] == f"http://paris.test/compute/v2.1/servers/{server_id}"
        gone = await berlin.client.put(f"{C}/servers/{server_id}", headers=h,
                                       json={"server": {"name": "x"}})  # fmt: skip
        assert gone.status_code == 404 and "relocated to site Paris" in gone.text
        listed = (await berlin.client.get(f"{C}/servers", headers=h)).json()["servers"]
        assert server_id not in [x["id"] for x in listed]
        assert not list((berlin.settings.data_dir / "relocations").glob("*"))
        assert not list((paris.settings.data_dir / "relocations").glob("*"))
        [arrived] = await Relocations(ctx_of(paris).store).list(direction="in")
        assert arrived.phase == "done" and arrived.server_id == server_id

        # Deleted at Paris, it takes its hidden image along.
        r = await paris.client.delete(f"{C}/servers/{server_id}", headers=at_paris)
        assert r.status_code == 204
        await ctx_of(paris).slots.require(ComputeState).lifecycle.idle()
        assert await ImageRepository(ctx_of(paris).store).get(image.id) is None


async def test_what_paris_cannot_run_is_refused_before_anything_stops(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h = {**admin(berlin), **NOVA}
        r = await berlin.client.post(
            f"{C}/flavors",
            json={"flavor": {"name": "odd", "ram": 333, "vcpus": 3, "disk": 1, "id": "odd"}},
            headers=h,
        )
        assert r.status_code == 200, r.text
        server_id = await active_server(berlin, h, flavorRef="odd")

        r = await relocate(berlin, h, server_id, "Paris")
        assert r.status_code == 400
        assert "Paris has no flavor like odd (3 vCPU, 333 MB RAM" in r.text
        r = await relocate(berlin, h, server_id, "Atlantis")
        assert r.status_code == 400 and "Unknown site 'Atlantis'" in r.text
        r = await relocate(berlin, h, server_id, "Berlin")
        assert r.status_code == 400 and "at Berlin already" in r.text

        # A network Paris does not have.
        r = await berlin.client.post(
            "/network/v2.0/networks", json={"network": {"name": "till-net"}}, headers=admin(berlin)
        )
        assert r.status_code == 201, r.text
        net = r.json()["network"]["id"]
        r = await berlin.client.post(
            "/network/v2.0/subnets",
            json={"subnet": {"network_id": net, "cidr": "10.9.0.0/24", "ip_version": 4}},
            headers=admin(berlin),
        )
        assert r.status_code == 201, r.text
        on_net = await active_server(berlin, h, networks=[{"uuid": net}])
        r = await relocate(berlin, h, on_net, "Paris")
        assert r.status_code == 400 and "Paris has no network named 'till-net'" in r.text

        # Paris's quota for the project: no room for one more server.
        plain = await active_server(berlin, h)
        project = (await ctx_of(berlin).slots.require(ComputeState).servers.get(plain)).project_id
        r = await paris.client.put(f"{C}/os-quota-sets/{project}",
                                   json={"quota_set": {"instances": 0}},
                                   headers={**admin(paris), **NOVA})  # fmt: skip
        assert r.status_code == 200, r.text
        r = await relocate(berlin, h, plain, "Paris")
        assert r.status_code == 403 and "Quota exceeded for instances" in r.text
        server = await ctx_of(berlin).slots.require(ComputeState).servers.get(server_id)
        assert server is not None and server.vm_state == "active" and server.task_state is None
        assert await Relocations(ctx_of(berlin).store).list() == []
        assert await Relocations(ctx_of(paris).store).list() == []


async def test_a_cut_mid_disk_resumes_where_paris_bytes_end(tmp_path: Path) -> None:
    transport = ChunkCounter()
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True, transport=transport) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h, at_paris = {**admin(berlin), **NOVA}, {**admin(paris), **NOVA}
        server_id = await active_server(berlin, h)
        relocator = ctx_of(berlin).slots.require(Relocator)
        waits: list[float] = []

        async def heal_on_retry(seconds: float) -> None:
            # The runner's backoff after the cut: the link comes back.
            waits.append(seconds)
            transport.heal()
            await asyncio.sleep(min(seconds, 0.05))  # the others' turn (Paris's build)

        relocator.sleep = heal_on_retry
        transport.cut_after = 1  # one chunk reaches Paris, then the link goes
        r = await relocate(berlin, h, server_id, "Paris")
        assert r.status_code == 202, r.text
        record = await moved(berlin, h, server_id)
        assert waits, "the cut was never met"
        assert transport.chunks == 3  # nothing sent twice: 9 MiB in three chunks
        assert record["bytes_done"] == len(DISK)
        await status_is(paris, at_paris, server_id, "ACTIVE")


async def test_a_runner_stopped_mid_move_is_taken_up_from_its_journal(tmp_path: Path) -> None:
    transport = ChunkCounter()
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True, transport=transport) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h, at_paris = {**admin(berlin), **NOVA}, {**admin(paris), **NOVA}
        server_id = await active_server(berlin, h)
        ctx = ctx_of(berlin)
        relocator = ctx.slots.require(Relocator)
        stalled = stall(relocator)  # the link is down: the site stops meanwhile
        transport.cut_after = 2
        r = await relocate(berlin, h, server_id, "Paris")
        assert r.status_code == 202, r.text
        await asyncio.wait_for(stalled.wait(), 30)
        await relocator.stop()
        [record] = await Relocations(ctx.store).list(direction="out")
        assert record.phase == "sending" and record.done_bytes == 8 << 20
        server = await ctx.slots.require(ComputeState).servers.get(server_id)
        assert server is not None and server.task_state == "relocating"

        transport.heal()
        again = Relocator(ctx.slots.require(ComputeState))
        ctx.slots.put(again)
        assert await again.resume() == 1
        await moved(berlin, h, server_id)
        assert transport.chunks == 3  # the restart sent only what Paris lacked
        await status_is(paris, at_paris, server_id, "ACTIVE")
        await again.stop()


async def test_a_move_that_fails_before_the_commit_leaves_the_server_running_here(
    tmp_path: Path,
) -> None:
    transport = ChunkCounter()
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True, transport=transport) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h = {**admin(berlin), **NOVA}
        server_id = await active_server(berlin, h)
        hours_pass(ctx_of(berlin).slots.require(Relocator))
        transport.cut_after = 1
        r = await relocate(berlin, h, server_id, "Paris")
        assert r.status_code == 202, r.text
        record = await outgoing_failed(berlin)
        assert "link to Paris is down" in (record.error or "")
        await status_is(berlin, h, server_id, "ACTIVE")  # running here again
        assert not list((berlin.settings.data_dir / "relocations").glob("*.out"))
        transport.cut.clear()
        r = await paris.client.get(f"{C}/servers/{server_id}", headers={**admin(paris), **NOVA})
        assert r.status_code == 404  # never created there


async def test_paris_decides_from_what_it_holds_whether_the_user_may_move_here(
    tmp_path: Path,
) -> None:
    """Alice is a member of 'shop' at Berlin, and nothing at Paris: her token proves who
    she is there, and Paris refuses to create her server (403), before Berlin stops it."""
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True, trust_admins=False) as s:
        berlin = s["Berlin"]
        h = admin(berlin)
        r = await berlin.client.post("/identity/v3/projects", json={"project": {"name": "shop"}},
                                     headers=h)  # fmt: skip
        project_id = r.json()["project"]["id"]
        r = await berlin.client.post(
            "/identity/v3/users",
            json={"user": {"name": "alice", "password": "alice-pw-1",
                           "default_project_id": project_id}},
            headers=h,
        )  # fmt: skip
        user_id = r.json()["user"]["id"]
        member = predictable_id("role", "member", domain_id="")
        r = await berlin.client.put(
            f"/identity/v3/projects/{project_id}/users/{user_id}/roles/{member}", headers=h
        )
        assert r.status_code == 204, r.text
        alice = {"X-Auth-Token": await berlin.token("alice", "alice-pw-1", "shop"), **NOVA}
        server_id = await active_server(berlin, alice)

        r = await relocate(berlin, alice, server_id, "Paris")
        assert r.status_code == 403 and "Paris refuses the relocation" in r.text, r.text
        await status_is(berlin, alice, server_id, "ACTIVE")
        assert await Relocations(ctx_of(s["Paris"]).store).list() == []


async def test_a_guest_on_a_network_keeps_its_address_where_paris_has_the_network(
    tmp_path: Path,
) -> None:
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h, at_paris = {**admin(berlin), **NOVA}, {**admin(paris), **NOVA}
        nets: dict[str, str] = {}
        for site in (berlin, paris):
            r = await site.client.post("/network/v2.0/networks",
                                       json={"network": {"name": "till-net"}},
                                       headers=admin(site))  # fmt: skip
            nets[site.settings.name] = r.json()["network"]["id"]
            r = await site.client.post(
                "/network/v2.0/subnets",
                json={"subnet": {"network_id": nets[site.settings.name], "cidr": "10.9.0.0/24",
                                 "ip_version": 4}},
                headers=admin(site),
            )  # fmt: skip
            assert r.status_code == 201, r.text
        server_id = await active_server(
            berlin, h, networks=[{"uuid": nets["Berlin"], "fixed_ip": "10.9.0.42"}]
        )
        r = await relocate(berlin, h, server_id, "Paris")
        assert r.status_code == 202, r.text
        await moved(berlin, h, server_id)
        await status_is(paris, at_paris, server_id, "ACTIVE")
        shown = (await paris.client.get(f"{C}/servers/{server_id}", headers=at_paris)).json()
        assert [a["addr"] for a in shown["server"]["addresses"]["till-net"]] == ["10.9.0.42"]
        r = await berlin.client.get("/network/v2.0/ports", params={"device_id": server_id},
                                    headers=admin(berlin))  # fmt: skip
        assert r.json()["ports"] == []  # its port at Berlin went with it


async def test_a_guest_that_fails_to_start_at_paris_runs_at_berlin_again(tmp_path: Path) -> None:
    """The fake driver fails the spawn of a server named *fake-spawn-failure*: Paris's
    server goes to ERROR, Berlin has Paris abort it (deleted there) and starts its
    guest again."""
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h = {**admin(berlin), **NOVA}
        server_id = await active_server(berlin, h)
        r = await berlin.client.put(
            f"{C}/servers/{server_id}",
            json={"server": {"name": "till-fake-spawn-failure"}},
            headers=h,
        )  # fmt: skip  (spawns fail from now on)
        assert r.status_code == 200, r.text
        r = await relocate(berlin, h, server_id, "Paris")
        assert r.status_code == 202, r.text
        record = await journal(berlin, h, server_id, "failed", within=30)
        assert "did not start at Paris" in record["error"]
        await status_is(berlin, h, server_id, "ACTIVE")
        ctx = ctx_of(paris)
        await ctx.slots.require(ComputeState).lifecycle.idle()
        r = await paris.client.get(f"{C}/servers/{server_id}", headers={**admin(paris), **NOVA})
        assert r.status_code == 404  # aborted there: never at both sites


@pytest.mark.skipif(shutil.which("qemu-storage-daemon") is None, reason="needs qemu-storage-daemon")
async def test_a_volume_stays_at_berlin_and_is_attached_from_paris(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        try:
            await volume_stays(berlin, paris)
        finally:  # exports outlive their site by design: a test removes its own
            await ctx_of(berlin).slots.require(VolumeState).exports.close_all()


async def volume_stays(berlin: InProcessSite, paris: InProcessSite) -> None:
    h, at_paris = {**admin(berlin), **NOVA}, {**admin(paris), **NOVA}
    cinder = {**admin(berlin), "OpenStack-API-Version": "volume 3.71"}
    server_id = await active_server(berlin, h)
    r = await berlin.client.post("/volume/v3/volumes", json={"volume": {"size": 1}},
                                 headers=cinder)  # fmt: skip
    volume_id = r.json()["volume"]["id"]
    r = await berlin.client.post(f"{C}/servers/{server_id}/os-volume_attachments",
                                 json={"volumeAttachment": {"volumeId": volume_id}},
                                 headers=h)  # fmt: skip
    assert r.status_code == 200, r.text

    r = await relocate(berlin, h, server_id, "Paris")  # volumes stay by default
    assert r.status_code == 202, r.text
    await moved(berlin, h, server_id)
    await status_is(paris, at_paris, server_id, "ACTIVE")

    driver = ctx_of(paris).slots.require(ComputeState).driver
    assert isinstance(driver, FakeDriver)
    device = driver.instances[server_id].volumes[volume_id]
    assert device.nbd is not None and device.nbd["port"] > 0  # Berlin's export
    shown = (await berlin.client.get(f"/volume/v3/volumes/{volume_id}", headers=cinder)).json()
    assert shown["volume"]["status"] == "in-use"
    [where] = shown["volume"]["attachments"]
    assert where["server_id"] == server_id and where["host_name"] == "Paris/relocated"
    exports = ctx_of(berlin).slots.require(VolumeState).exports
    assert exports.exported() == [where["attachment_id"]]

    # Paris detaches it: Berlin releases the attachment, and the export with it.
    r = await paris.client.delete(
        f"{C}/servers/{server_id}/os-volume_attachments/{volume_id}", headers=at_paris
    )
    assert r.status_code == 202, r.text
    shown = (await berlin.client.get(f"/volume/v3/volumes/{volume_id}", headers=cinder)).json()
    assert shown["volume"]["status"] == "available" and exports.exported() == []


async def test_a_stopped_server_arrives_stopped(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h, at_paris = {**admin(berlin), **NOVA}, {**admin(paris), **NOVA}
        server_id = await active_server(berlin, h)
        r = await berlin.client.post(f"{C}/servers/{server_id}/action", json={"os-stop": None},
                                     headers=h)  # fmt: skip
        assert r.status_code == 202, r.text
        await status_is(berlin, h, server_id, "SHUTOFF")
        r = await relocate(berlin, h, server_id, "Paris")
        assert r.status_code == 202, r.text
        await moved(berlin, h, server_id)
        await status_is(paris, at_paris, server_id, "SHUTOFF")  # as Nova keeps it
        driver = ctx_of(paris).slots.require(ComputeState).driver
        assert driver.power_state(server_id) != PowerState.RUNNING
        r = await paris.client.post(f"{C}/servers/{server_id}/action", json={"os-start": None},
                                    headers=at_paris)  # fmt: skip
        assert r.status_code == 202, r.text
        await status_is(paris, at_paris, server_id, "ACTIVE")


async def test_a_guest_on_its_project_s_auto_network_gets_paris_s_own(tmp_path: Path) -> None:
    """Booted with ``networks: auto`` at Berlin (the project's default network there),
    the guest is on the project's default network at Paris, made when it is built."""
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        h, at_paris = {**admin(berlin), **NOVA}, {**admin(paris), **NOVA}
        server_id = await active_server(berlin, h, networks="auto")
        r = await relocate(berlin, h, server_id, "Paris")
        assert r.status_code == 202, r.text
        await moved(berlin, h, server_id)
        await status_is(paris, at_paris, server_id, "ACTIVE")
        shown = (await paris.client.get(f"{C}/servers/{server_id}", headers=at_paris)).json()
        assert shown["server"]["addresses"]  # a port on Paris's default network
