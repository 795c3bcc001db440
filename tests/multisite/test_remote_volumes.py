"""A server in Berlin attaches a volume of Paris (``X-Scope: {volume: Paris}``): Paris
records the attachment for Berlin's host and exports the volume to it over NBD with a
key of that attachment alone; Berlin's guest gets the export; a detach, or the
server's delete, releases it at Paris. Another fleet site cannot release what Berlin
holds (a compromised site harms only itself)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgefed.api.sitecalls import signed_headers
from edgefed.drivers.fake import FakeDriver
from edgefed.services.compute.remote_volumes import release_owed
from edgefed.services.compute.state import ComputeState
from edgefed.services.volume.state import VolumeState
from edgefed.store.compute import PendingReleases
from edgefed.store.image import ImageRepository
from edgefed.testkit.asgi_fleet import FleetTransport
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import admin, ctx_of, fleet
from edgefed.testkit.wait import eventually

C = "/compute/v2.1"
NOVA = {"OpenStack-API-Version": "compute 2.96"}
CINDER = {"OpenStack-API-Version": "volume 3.71"}
PARIS = {"X-Scope": "{volume: Paris}"}


async def active_server(berlin: InProcessSite, h: dict[str, str]) -> str:
    image = await ImageRepository(ctx_of(berlin).store).create(
        owner=None, name="tiny", disk_format="raw", container_format="bare",
        visibility="public", data=b"disk" * 1024, data_dir=berlin.settings.data_dir,
    )  # fmt: skip
    body = {"server": {"name": "vm", "imageRef": image.id, "flavorRef": "1", "networks": "none"}}
    r = await berlin.client.post(f"{C}/servers", json=body, headers=h)
    assert r.status_code == 202, r.text
    server_id = str(r.json()["server"]["id"])

    async def active() -> bool:
        shown = await berlin.client.get(f"{C}/servers/{server_id}", headers=h)
        return bool(shown.json()["server"]["status"] == "ACTIVE")

    await eventually(active, within=10, every=0.01, what="server ACTIVE")
    return server_id


async def paris_volume(paris: InProcessSite, volume_id: str) -> dict[str, Any]:
    r = await paris.client.get(
        f"/volume/v3/volumes/{volume_id}", headers={**admin(paris), **CINDER}
    )
    assert r.status_code == 200, r.text
    return r.json()["volume"]  # type: ignore[no-any-return]


def guest_volumes(berlin: InProcessSite, server_id: str) -> dict[str, Any]:
    driver = ctx_of(berlin).slots.require(ComputeState).driver
    assert isinstance(driver, FakeDriver)
    return driver.instances[server_id].volumes


async def test_a_server_in_berlin_uses_a_volume_of_paris(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Paris", "Denver"], joined=True) as s:
        try:
            await uses_a_volume_of_paris(s["Berlin"], s["Paris"], s["Denver"])
        finally:  # exports outlive their site by design: a test removes its own
            await ctx_of(s["Paris"]).slots.require(VolumeState).exports.close_all()


async def uses_a_volume_of_paris(
    berlin: InProcessSite, paris: InProcessSite, denver: InProcessSite
) -> None:
    h = {**admin(berlin), **NOVA}
    server_id = await active_server(berlin, h)
    r = await paris.client.post(
        "/volume/v3/volumes", json={"volume": {"size": 1, "name": "shop-db"}},
        headers={**admin(paris), **CINDER},
    )  # fmt: skip
    volume_id = r.json()["volume"]["id"]
    attach = {"volumeAttachment": {"volumeId": volume_id}}
    path = f"{C}/servers/{server_id}/os-volume_attachments"

    # Without a scope naming Paris, Berlin has no such volume.
    r = await berlin.client.post(path, json=attach, headers=h)
    assert r.status_code == 404 and volume_id in r.text

    r = await berlin.client.post(path, json=attach, headers={**h, **PARIS})
    assert r.status_code == 200, r.text
    assert r.json()["volumeAttachment"]["device"] == "/dev/vdb"
    shown = await paris_volume(paris, volume_id)
    assert shown["status"] == "in-use"
    [where] = shown["attachments"]
    assert where["server_id"] == server_id and where["host_name"] == "Berlin/berlin-compute-1"
    device = guest_volumes(berlin, server_id)[volume_id]
    assert device.nbd is not None and device.nbd["port"] > 0
    assert device.nbd["tls_psk_identity"] == where["attachment_id"]
    exports = ctx_of(paris).slots.require(VolumeState).exports
    assert exports.exported() == [where["attachment_id"]]

    # Denver, a fleet member, cannot release what Berlin's host holds.
    release = f"/volume/v3/os-edge/attachments/{where['attachment_id']}"
    signed = signed_headers(ctx_of(denver), target="Paris", method="DELETE", path=release,
                            body=b"")  # fmt: skip
    r = await paris.client.delete(release, headers=signed)
    assert r.status_code == 403 and "Denver" in r.text
    assert (await paris_volume(paris, volume_id))["status"] == "in-use"

    # Berlin's detach releases it at Paris, and the export with it.
    r = await berlin.client.delete(f"{path}/{volume_id}", headers=h)
    assert r.status_code == 202, r.text
    assert (await paris_volume(paris, volume_id))["status"] == "available"
    assert exports.exported() == [] and volume_id not in guest_volumes(berlin, server_id)

    # Attached again, then the server deleted: Paris's volume is free again.
    r = await berlin.client.post(path, json=attach, headers={**h, **PARIS})
    assert r.status_code == 200, r.text
    r = await berlin.client.delete(f"{C}/servers/{server_id}", headers=h)
    assert r.status_code == 204
    await ctx_of(berlin).slots.require(ComputeState).lifecycle.idle()
    shown = await paris_volume(paris, volume_id)
    assert shown["status"] == "available" and shown["attachments"] == []


async def test_a_detach_during_a_cut_is_owed_and_completed_after_the_heal(
    tmp_path: Path,
) -> None:
    transport = FleetTransport()
    async with fleet(tmp_path, ["Berlin", "Paris"], joined=True, transport=transport) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        try:
            h = {**admin(berlin), **NOVA}
            server_id = await active_server(berlin, h)
            r = await paris.client.post(
                "/volume/v3/volumes", json={"volume": {"size": 1}},
                headers={**admin(paris), **CINDER},
            )  # fmt: skip
            volume_id = r.json()["volume"]["id"]
            path = f"{C}/servers/{server_id}/os-volume_attachments"
            attach = {"volumeAttachment": {"volumeId": volume_id}}
            r = await berlin.client.post(path, json=attach, headers={**h, **PARIS})
            assert r.status_code == 200, r.text

            transport.cut.add("paris.test")
            r = await berlin.client.delete(f"{path}/{volume_id}", headers=h)
            assert r.status_code == 202, r.text  # done here: the guest let go of it
            assert volume_id not in guest_volumes(berlin, server_id)
            [owed] = await PendingReleases(ctx_of(berlin).store).owed()
            assert owed.site == "Paris" and "did not answer" in (owed.last_error or "")
            assert await release_owed(ctx_of(berlin)) == 1  # still cut: still owed
            # Paris, not told yet, says the truth it knows: attached to Berlin's server.
            assert (await paris_volume(paris, volume_id))["status"] == "in-use"

            transport.cut.discard("paris.test")
            assert await release_owed(ctx_of(berlin)) == 0
            assert await PendingReleases(ctx_of(berlin).store).owed() == []
            shown = await paris_volume(paris, volume_id)
            assert shown["status"] == "available" and shown["attachments"] == []
        finally:
            await ctx_of(paris).slots.require(VolumeState).exports.close_all()
