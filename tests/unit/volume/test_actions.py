"""Volume actions: extend, flags, reset status, the attach and detach actions Nova calls,
and the attachments API's state machine."""

from __future__ import annotations

import asyncio

from tests.unit.volume.cinder_kit import (
    action,
    admin,
    as_,
    delete,
    fault,
    get,
    post,
    project_id,
    put,
    shown,
    volume,
)

from edgefed.testkit.inprocess import InProcessSite

SERVER = "8a5e0bf4-1111-4e6f-9d53-6a4c0f1a2b3c"
CONNECTOR = {"host": "berlin-host-1", "initiator": "iqn.test", "mountpoint": "/dev/vdb"}


async def status(site: InProcessSite, volume_id: str) -> str:
    return (await shown(site, admin(site), f"volumes/{volume_id}", "volume"))["status"]


async def test_extend_grows_the_volume_and_its_file(site) -> None:
    h = as_(site)
    vol = await volume(site, h)
    assert (await action(site, h, vol["id"], "os-extend", {"new_size": 3})).status_code == 202
    assert (await shown(site, h, f"volumes/{vol['id']}", "volume"))["size"] == 3
    path = site.app.state.ctx.settings.data_dir / "volumes" / f"{vol['id']}.raw"
    assert path.stat().st_size == 3 << 30
    fault(
        await action(site, h, vol["id"], "os-extend", {"new_size": 2}),
        400,
        "New size for extend must be greater than current size. (current: 3, extended: 2).",
    )
    fault(
        await action(site, h, vol["id"], "os-extend", {}), 400, "'new_size' is a required property"
    )


async def test_extend_beyond_the_gigabytes_quota_is_413(site) -> None:
    h = as_(site)
    vol = await volume(site, h)
    pid = project_id("alpha")
    await put(site, admin(site), f"os-quota-sets/{pid}", {"quota_set": {"gigabytes": 2}})
    fault(
        await action(site, h, vol["id"], "os-extend", {"new_size": 5}),
        413,
        "Requested volume or snapshot exceeds allowed gigabytes quota. Requested 4G, quota is "
        "2G and 1G has been consumed.",
    )
    assert (await shown(site, h, f"volumes/{vol['id']}", "volume"))["size"] == 1


async def test_extend_of_an_in_use_volume_needs_3_42(site) -> None:
    h = as_(site)
    vol = await volume(site, h)
    await action(
        site, h, vol["id"], "os-attach", {"instance_uuid": SERVER, "mountpoint": "/dev/vdb"}
    )
    fault(
        await action(site, as_(site, version="3.41"), vol["id"], "os-extend", {"new_size": 2}),
        400,
        f"Volume {vol['id']} status must be 'available' to extend, currently in-use.",
    )
    assert (await action(site, h, vol["id"], "os-extend", {"new_size": 2})).status_code == 202


async def test_bootable_readonly_and_reset_status(site) -> None:
    h = as_(site)
    vol = await volume(site, h)
    assert (
        await action(site, h, vol["id"], "os-set_bootable", {"bootable": "true"})
    ).status_code == 200
    assert (await shown(site, h, f"volumes/{vol['id']}", "volume"))["bootable"] == "true"
    fault(
        await action(site, h, vol["id"], "os-set_bootable", {"bootable": "maybe"}),
        400,
        "bootable must be a boolean",
    )
    assert (
        await action(site, h, vol["id"], "os-update_readonly_flag", {"readonly": True})
    ).status_code == 202
    # a read-only volume attaches read-only only
    fault(
        await action(
            site,
            h,
            vol["id"],
            "os-attach",
            {"instance_uuid": SERVER, "mountpoint": "/dev/vdb", "mode": "rw"},
        ),
        400,
        f"Invalid attaching mode 'rw' for volume {vol['id']}.",
    )
    fault(await action(site, h, vol["id"], "os-reset_status", {"status": "error"}), 403)
    r = await action(site, admin(site), vol["id"], "os-reset_status", {"status": "error"})
    assert r.status_code == 202 and await status(site, vol["id"]) == "error"
    fault(
        await action(site, admin(site), vol["id"], "os-reset_status", {"status": "broken"}),
        400,
        "Must specify a valid status",
    )
    fault(
        await action(site, h, vol["id"], "os-update_readonly_flag", {"readonly": False}),
        400,
        f"Volume {vol['id']} status must be available to update readonly flag, but current "
        "status is: error.",
    )
    fault(
        await action(site, h, vol["id"], "os-frobnicate", {}),
        400,
        "There is no such action: os-frobnicate",
    )
    # an errored volume deletes
    assert (await delete(site, h, f"volumes/{vol['id']}")).status_code == 202


async def test_nova_s_old_attach_and_detach_sequence(site) -> None:
    h = as_(site)
    vol = await volume(site, h)
    vid = vol["id"]
    assert (await action(site, h, vid, "os-reserve")).status_code == 202
    assert await status(site, vid) == "attaching"
    fault(
        await action(site, h, vid, "os-reserve"),
        400,
        "Invalid volume: Volume status must be available to reserve, but the status is attaching.",
    )
    r = await action(site, h, vid, "os-initialize_connection", {"connector": CONNECTOR})
    assert r.status_code == 200
    info = r.json()["connection_info"]
    assert info["driver_volume_type"] == "local" and info["data"]["access_mode"] == "rw"
    assert info["data"]["device_path"].endswith(f"{vid}.raw")
    r = await action(
        site, h, vid, "os-attach", {"instance_uuid": SERVER, "mountpoint": "/dev/vdb", "mode": "rw"}
    )
    assert r.status_code == 202
    seen = await shown(site, h, f"volumes/{vid}", "volume")
    assert seen["status"] == "in-use"
    (attached,) = seen["attachments"]
    assert (attached["server_id"], attached["device"], attached["volume_id"]) == (
        SERVER,
        "/dev/vdb",
        vid,
    )
    assert attached["host_name"] is None  # only admins see the host
    assert (await action(site, h, vid, "os-begin_detaching")).status_code == 202
    assert await status(site, vid) == "detaching"
    assert (await action(site, h, vid, "os-roll_detaching")).status_code == 202
    assert await status(site, vid) == "in-use"
    await action(site, h, vid, "os-begin_detaching")
    fault(
        await action(site, h, vid, "os-begin_detaching"),
        400,
        "Unable to detach volume. Volume status must be 'in-use' and attach_status must be "
        "'attached' to detach.",
    )
    assert (
        await action(site, h, vid, "os-terminate_connection", {"connector": CONNECTOR})
    ).status_code == 202
    r = await action(site, h, vid, "os-detach", {"attachment_id": attached["attachment_id"]})
    assert r.status_code == 202
    seen = await shown(site, h, f"volumes/{vid}", "volume")
    assert (seen["status"], seen["attachments"]) == ("available", [])
    # a reservation given back
    await action(site, h, vid, "os-reserve")
    assert (await action(site, h, vid, "os-unreserve")).status_code == 202
    assert await status(site, vid) == "available"


async def test_the_attachments_api_state_machine(site) -> None:
    h = as_(site)
    vol = await volume(site, h)
    vid = vol["id"]
    r = await post(
        site, h, "attachments", {"attachment": {"volume_uuid": vid, "instance_uuid": SERVER}}
    )
    assert r.status_code == 200, r.text
    att = r.json()["attachment"]
    assert (att["status"], att["instance"], att["volume_id"]) == ("reserved", SERVER, vid)
    assert await status(site, vid) == "reserved"
    # another server may not take a volume that is not multiattach
    other = "9b6f1c05-2222-4e6f-9d53-6a4c0f1a2b3c"
    fault(
        await post(
            site, h, "attachments", {"attachment": {"volume_uuid": vid, "instance_uuid": other}}
        ),
        400,
        f"Invalid volume: Volume {vid} status must be available to reserve, but the current "
        "status is reserved.",
    )
    r = await put(site, h, f"attachments/{att['id']}", {"attachment": {"connector": CONNECTOR}})
    assert r.status_code == 200, r.text
    updated = r.json()["attachment"]
    assert (
        updated["status"] == "attaching"
        and updated["connection_info"]["driver_volume_type"] == "local"
    )
    assert await status(site, vid) == "attaching"
    r = await post(site, h, f"attachments/{att['id']}/action", {"os-complete": None})
    assert r.status_code == 204
    assert await status(site, vid) == "in-use"
    shown_att = await shown(site, h, f"attachments/{att['id']}", "attachment")
    assert shown_att["status"] == "attached" and shown_att["attached_at"]
    listed = (await get(site, h, f"attachments?volume_id={vid}")).json()["attachments"]
    assert [a["id"] for a in listed] == [att["id"]] and set(listed[0]) == {
        "id",
        "status",
        "instance",
        "volume_id",
    }
    detail = (await get(site, h, "attachments/detail")).json()["attachments"]
    assert detail[0]["attach_mode"] == "rw"  # the connector's mode, rw by default
    # the volume says where it is attached
    (where,) = (await shown(site, h, f"volumes/{vid}", "volume"))["attachments"]
    assert where["server_id"] == SERVER and where["attachment_id"] == att["id"]
    fault(await delete(site, h, f"volumes/{vid}"), 400, "attached")
    r = await delete(site, h, f"attachments/{att['id']}")
    assert r.status_code == 200 and r.json() == {"attachments": []}
    assert await status(site, vid) == "available"
    fault(
        await get(site, h, f"attachments/{att['id']}"),
        404,
        f"Volume attachment could not be found with filter: attachment_id = {att['id']}.",
    )


async def test_attachment_refusals(site) -> None:
    h = as_(site)
    fault(
        await post(site, h, "attachments", {"attachment": {"volume_uuid": "nope"}}),
        404,
        "Volume nope could not be found.",
    )
    fault(
        await post(site, h, "attachments", {"attachment": {}}),
        400,
        "'volume_uuid' is a required property",
    )
    vol = await volume(site, h)
    fault(
        await post(
            site,
            as_(site, version="3.53"),
            "attachments",
            {"attachment": {"volume_uuid": vol["id"], "mode": "ro"}},
        ),
        400,
        "Additional properties are not allowed ('mode' was unexpected)",
    )
    r = await post(site, h, "attachments", {"attachment": {"volume_uuid": vol["id"], "mode": "ro"}})
    assert r.json()["attachment"]["attach_mode"] == "ro"
    att = r.json()["attachment"]
    fault(
        await post(
            site,
            as_(site, version="3.43"),
            f"attachments/{att['id']}/action",
            {"os-complete": None},
        ),
        404,
    )
    fault(
        await post(
            site,
            as_(site, project="beta"),
            "attachments",
            {"attachment": {"volume_uuid": vol["id"]}},
        ),
        404,
    )
    await action(site, admin(site), vol["id"], "os-reset_status", {"status": "error"})
    fault(
        await put(site, h, f"attachments/{att['id']}", {"attachment": {"connector": CONNECTOR}}),
        409,
        "Volume attachments can not be updated if the volume is in an error state",
    )


async def test_racing_reservations_of_one_volume_leave_one_winner(site) -> None:
    h = as_(site)
    vol = await volume(site, h)
    servers = [f"8a5e0bf4-1111-4e6f-9d53-6a4c0f1a2b{i:02d}" for i in range(8)]
    answers = await asyncio.gather(
        *(
            post(
                site,
                h,
                "attachments",
                {"attachment": {"volume_uuid": vol["id"], "instance_uuid": s}},
            )
            for s in servers
        )
    )
    assert sorted(r.status_code for r in answers) == [200] + [400] * 7
    listed = (await get(site, h, f"attachments?volume_id={vol['id']}")).json()["attachments"]
    assert len(listed) == 1 and await status(site, vol["id"]) == "reserved"


async def test_a_delete_racing_a_reservation_never_leaves_an_attached_ghost(site) -> None:
    h = as_(site)
    vol = await volume(site, h)
    reserve, remove = await asyncio.gather(
        post(
            site,
            h,
            "attachments",
            {"attachment": {"volume_uuid": vol["id"], "instance_uuid": SERVER}},
        ),
        delete(site, h, f"volumes/{vol['id']}"),
    )
    # one of them wins; the other is refused, and what is left is consistent
    assert sorted([reserve.status_code, remove.status_code]) in ([200, 400], [202, 404])
    left = await get(site, h, f"volumes/{vol['id']}")
    if remove.status_code == 202:
        assert left.status_code == 404
        assert (await get(site, h, "attachments")).json()["attachments"] == []
    else:
        assert left.json()["volume"]["status"] == "reserved"
