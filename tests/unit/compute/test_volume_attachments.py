"""``/servers/{id}/os-volume_attachments``: a volume of this site attached to a server
(``openstack server add volume`` / ``remove volume``), on the fake driver: both sides
agree on where the volume is, refusals name their cause and leave no trace, and a
deleted server frees (or deletes) its volumes."""

from __future__ import annotations

from typing import Any

from compute_testkit import CINDER, VOL, boot, fake, member, new_volume, volume, wait_for

from edgefed.store.compute import ServerVolumes
from edgefed.store.volume import Attachments
from edgefed.testkit.inprocess import InProcessSite

C = "/compute/v2.1"


async def attach(
    site: InProcessSite, h: dict[str, str], server_id: str, volume_id: str, **extra: Any
) -> Any:
    return await site.client.post(
        f"{C}/servers/{server_id}/os-volume_attachments",
        json={"volumeAttachment": {"volumeId": volume_id, **extra}},
        headers=h,
    )


async def active_server(site: InProcessSite, h: dict[str, str], image_id: str, **extra: Any) -> str:
    created = await boot(site, h, image_id, **extra)
    await wait_for(site, h, created["id"], "ACTIVE")
    return str(created["id"])


async def test_attach_and_detach_a_volume(site, h, image_id):
    server_id = await active_server(site, h, image_id)
    volume_id = await new_volume(site, h)
    r = await attach(site, h, server_id, volume_id)
    assert r.status_code == 200, r.text
    attached = r.json()["volumeAttachment"]
    assert attached["volumeId"] == volume_id and attached["serverId"] == server_id
    assert attached["device"] == "/dev/vdb"
    # The guest has the volume's own file, and both services say where it is.
    device = fake(site).instances[server_id].volumes[volume_id]
    assert device.path.exists() and device.disk_format == "raw" and not device.read_only
    shown = await volume(site, h, volume_id)
    assert shown["status"] == "in-use"
    [where] = shown["attachments"]
    assert where["server_id"] == server_id and where["device"] == "/dev/vdb"
    server = await wait_for(site, h, server_id, "ACTIVE")
    assert server["os-extended-volumes:volumes_attached"] == [
        {"id": volume_id, "delete_on_termination": False}
    ]
    listed = await site.client.get(f"{C}/servers/{server_id}/os-volume_attachments", headers=h)
    [item] = listed.json()["volumeAttachments"]
    assert item["attachment_id"] == where["attachment_id"] and "id" not in item  # 2.89+
    one = await site.client.get(
        f"{C}/servers/{server_id}/os-volume_attachments/{volume_id}", headers=h
    )
    assert one.json()["volumeAttachment"]["device"] == "/dev/vdb"

    r = await site.client.delete(
        f"{C}/servers/{server_id}/os-volume_attachments/{volume_id}", headers=h
    )
    assert r.status_code == 202, r.text
    assert volume_id not in fake(site).instances[server_id].volumes
    shown = await volume(site, h, volume_id)
    assert shown["status"] == "available" and shown["attachments"] == []
    server = await wait_for(site, h, server_id, "ACTIVE")
    assert server["os-extended-volumes:volumes_attached"] == []
    gone = await site.client.get(
        f"{C}/servers/{server_id}/os-volume_attachments/{volume_id}", headers=h
    )
    assert gone.status_code == 404 and volume_id in gone.text


async def test_second_volume_gets_the_next_device_and_a_taken_one_is_refused(site, h, image_id):
    server_id = await active_server(site, h, image_id)
    first, second, third = [await new_volume(site, h) for _ in range(3)]
    assert (await attach(site, h, server_id, first)).json()["volumeAttachment"]["device"] == (
        "/dev/vdb"
    )
    r = await attach(site, h, server_id, second, device="/dev/vdb")
    assert r.status_code == 400 and "/dev/vdb" in r.text and "in use" in r.text
    assert (await volume(site, h, second))["status"] == "available"
    r = await attach(site, h, server_id, third)
    assert r.json()["volumeAttachment"]["device"] == "/dev/vdc"


async def test_an_in_use_volume_cannot_go_to_a_second_server(site, h, image_id):
    one = await active_server(site, h, image_id)
    two = await active_server(site, h, image_id, name="vm2")
    volume_id = await new_volume(site, h)
    assert (await attach(site, h, one, volume_id)).status_code == 200
    r = await attach(site, h, two, volume_id)
    assert r.status_code == 400
    assert "in-use" in r.json()["badRequest"]["message"]
    # Nothing of the refused attach remains on either side.
    assert await ServerVolumes(site.app.state.ctx.store).list(two) == []
    assert len((await volume(site, h, volume_id))["attachments"]) == 1
    # And the same server asking twice is told it has it already.
    r = await attach(site, h, one, volume_id)
    assert r.status_code == 400 and "already attached" in r.text


async def test_an_attached_volume_cannot_be_deleted(site, h, image_id):
    server_id = await active_server(site, h, image_id)
    volume_id = await new_volume(site, h)
    assert (await attach(site, h, server_id, volume_id)).status_code == 200
    r = await site.client.delete(f"{VOL}/volumes/{volume_id}", headers={**h, **CINDER})
    assert r.status_code == 400, r.text
    assert (await volume(site, h, volume_id))["status"] == "in-use"


async def test_bad_and_foreign_volumes_are_refused(site, h, image_id):
    server_id = await active_server(site, h, image_id)
    r = await attach(site, h, server_id, "not-a-uuid")
    assert r.status_code == 400 and "volumeId" in r.text
    r = await attach(site, h, server_id, "9f1c1b0e-3c1d-4a56-9a7e-8c9d1f0b2a11")
    assert r.status_code == 404 and "9f1c1b0e-3c1d-4a56-9a7e-8c9d1f0b2a11" in r.text
    r = await attach(site, h, server_id, await new_volume(site, h), device="sdb")
    assert r.status_code == 400 and "device" in r.text


async def test_another_projects_volume_is_not_found(site, h, image_id):
    alpha, beta = member(site, "alpha"), member(site, "beta")
    server_id = await active_server(site, alpha, image_id)
    theirs = await new_volume(site, beta)
    r = await attach(site, alpha, server_id, theirs)
    assert r.status_code == 404 and f"Volume {theirs} could not be found" in r.text
    assert (await volume(site, h, theirs))["status"] == "available"


async def test_a_failed_plug_leaves_the_volume_available(site, h, image_id):
    server_id = await active_server(site, h, image_id)
    volume_id = await new_volume(site, h)
    fake(site).instances.pop(server_id)  # the hypervisor lost the guest
    r = await attach(site, h, server_id, volume_id)
    assert r.status_code == 409 and volume_id in r.text
    shown = await volume(site, h, volume_id)
    assert shown["status"] == "available" and shown["attachments"] == []
    assert await ServerVolumes(site.app.state.ctx.store).list(server_id) == []


async def test_an_interrupted_attach_is_completed_by_asking_again(site, h, image_id):
    server_id = await active_server(site, h, image_id)
    volume_id = await new_volume(site, h)
    # What a site killed between the volume's reservation and the hot-plug leaves.
    ctx = site.app.state.ctx
    repo = ServerVolumes(ctx.store)
    await repo.add(server_id, volume_id=volume_id)
    reserved = await Attachments(ctx.store).reserve(
        volume_id=volume_id,
        project_id=(await volume(site, h, volume_id))["os-vol-tenant-attr:tenant_id"],
        instance_uuid=server_id,
        connector={"host": "berlin"},
        connection_info={},
        attach_mode="rw",
    )
    await repo.change(server_id, volume_id, attachment_id=reserved.id)
    assert (await volume(site, h, volume_id))["status"] == "attaching"

    r = await attach(site, h, server_id, volume_id)
    assert r.status_code == 200, r.text
    shown = await volume(site, h, volume_id)
    assert shown["status"] == "in-use" and len(shown["attachments"]) == 1
    assert volume_id in fake(site).instances[server_id].volumes


async def test_deleting_the_server_frees_or_deletes_its_volumes(site, h, image_id):
    server_id = await active_server(site, h, image_id)
    kept, dropped = await new_volume(site, h), await new_volume(site, h)
    assert (await attach(site, h, server_id, kept)).status_code == 200
    r = await attach(site, h, server_id, dropped, delete_on_termination=True)
    assert r.json()["volumeAttachment"]["delete_on_termination"] is True
    assert (await site.client.delete(f"{C}/servers/{server_id}", headers=h)).status_code == 204
    await wait_for(site, h, server_id, "DELETED")
    assert (await volume(site, h, kept))["status"] == "available"
    r = await site.client.get(f"{VOL}/volumes/{dropped}", headers={**h, **CINDER})
    assert r.status_code == 404


async def test_a_locked_server_takes_no_volume_from_its_members(site, h, image_id):
    alpha = member(site, "alpha")
    server_id = await active_server(site, alpha, image_id)
    volume_id = await new_volume(site, alpha)
    r = await site.client.post(f"{C}/servers/{server_id}/action", json={"lock": None}, headers=h)
    assert r.status_code == 202
    r = await attach(site, alpha, server_id, volume_id)
    assert r.status_code == 409 and "locked" in r.text
    assert (await volume(site, h, volume_id))["status"] == "available"
