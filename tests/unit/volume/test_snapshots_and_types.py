"""Snapshots and volume types through the Cinder API."""

from __future__ import annotations

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
    snapshot,
    volume,
)

SERVER = "8a5e0bf4-1111-4e6f-9d53-6a4c0f1a2b3c"


async def test_a_snapshot_is_taken_listed_updated_and_deleted(site) -> None:
    h = as_(site)
    vol = await volume(site, h, 2)
    snap = await snapshot(site, h, vol["id"], name="before", metadata={"why": "upgrade"})
    assert (snap["status"], snap["size"], snap["volume_id"], snap["name"]) == (
        "available",
        2,
        vol["id"],
        "before",
    )
    assert snap["metadata"] == {"why": "upgrade"}
    assert "os-extended-snapshot-attributes:progress" not in snap  # show and lists only
    seen = await shown(site, h, f"snapshots/{snap['id']}", "snapshot")
    assert seen["os-extended-snapshot-attributes:progress"] == "100%"
    assert snap["user_id"] and snap["consumes_quota"] is True
    listed = (await get(site, h, "snapshots")).json()["snapshots"]
    assert [s["id"] for s in listed] == [snap["id"]]
    assert "os-extended-snapshot-attributes:progress" not in listed[0]
    detail = (await get(site, h, f"snapshots/detail?volume_id={vol['id']}")).json()["snapshots"]
    assert detail[0]["os-extended-snapshot-attributes:project_id"] == project_id("alpha")
    r = await put(site, h, f"snapshots/{snap['id']}", {"snapshot": {"description": "ok"}})
    assert r.status_code == 200 and r.json()["snapshot"]["description"] == "ok"
    assert (await delete(site, h, f"snapshots/{snap['id']}")).status_code == 202
    fault(
        await get(site, h, f"snapshots/{snap['id']}"),
        404,
        f"Snapshot {snap['id']} could not be found.",
    )
    # the volume deletes once its snapshot is gone
    assert (await delete(site, h, f"volumes/{vol['id']}")).status_code == 202


async def test_a_snapshot_of_an_in_use_volume_needs_force_before_3_66(site) -> None:
    h = as_(site)
    vol = await volume(site, h)
    await action(
        site, h, vol["id"], "os-attach", {"instance_uuid": SERVER, "mountpoint": "/dev/vdb"}
    )
    old = as_(site, version="3.65")
    r = await post(site, old, "snapshots", {"snapshot": {"volume_id": vol["id"]}})
    fault(
        r,
        400,
        "Invalid volume: The snapshot cannot be created when the volume is in in-use status.",
    )
    r = await post(site, old, "snapshots", {"snapshot": {"volume_id": vol["id"], "force": True}})
    assert r.status_code == 202
    assert (await snapshot(site, h, vol["id"]))["status"] == "available"


async def test_snapshot_refusals(site) -> None:
    h = as_(site)
    fault(
        await post(site, h, "snapshots", {"snapshot": {"volume_id": "nope"}}),
        404,
        "Volume nope could not be found.",
    )
    fault(
        await post(site, h, "snapshots", {"snapshot": {}}),
        400,
        "'volume_id' is a required property",
    )
    vol = await volume(site, h)
    fault(
        await post(
            site, as_(site, project="beta"), "snapshots", {"snapshot": {"volume_id": vol["id"]}}
        ),
        404,
    )
    await put(
        site,
        admin(site),
        f"os-quota-sets/{project_id('alpha')}",
        {"quota_set": {"snapshots": 1}},
    )
    await snapshot(site, h, vol["id"])
    r = await post(site, h, "snapshots", {"snapshot": {"volume_id": vol["id"]}})
    fault(r, 413, "Maximum number of snapshots allowed (1) exceeded")


async def test_the_default_type_exists_and_types_are_an_admins_to_make(site) -> None:
    h = as_(site)
    listed = (await get(site, h, "types")).json()["volume_types"]
    assert [t["name"] for t in listed] == ["__DEFAULT__"]
    default = await shown(site, h, "types/default", "volume_type")
    assert default["id"] == listed[0]["id"]
    body = {"volume_type": {"name": "gold", "description": "fast", "extra_specs": {"tier": "1"}}}
    fault(await post(site, h, "types", body), 403)
    r = await post(site, admin(site), "types", body)
    assert r.status_code == 200, r.text
    gold = r.json()["volume_type"]
    assert (gold["name"], gold["is_public"], gold["extra_specs"]) == ("gold", True, {"tier": "1"})
    assert gold["os-volume-type-access:is_public"] is True
    fault(await post(site, admin(site), "types", body), 409, "Volume Type gold already exists.")
    # members see the type but not its extra specs beyond the few users see
    assert (await shown(site, h, f"types/{gold['id']}", "volume_type"))["extra_specs"] == {}
    vol = await volume(site, h, volume_type="gold")
    assert vol["volume_type"] == "gold" and vol["volume_type_id"] == gold["id"]
    fault(
        await delete(site, admin(site), f"types/{gold['id']}"),
        400,
        "Target volume type is still in use.",
    )
    fault(
        await delete(site, admin(site), f"types/{default['id']}"),
        400,
        "Default volume type can not be deleted.",
    )
    await delete(site, h, f"volumes/{vol['id']}")
    assert (await delete(site, admin(site), f"types/{gold['id']}")).status_code == 202
    fault(
        await get(site, h, f"types/{gold['id']}"),
        404,
        f"Volume type {gold['id']} could not be found.",
    )


async def test_extra_specs_and_private_types(site) -> None:
    a = admin(site)
    r = await post(
        site,
        a,
        "types",
        {"volume_type": {"name": "secret", "os-volume-type-access:is_public": False}},
    )
    secret = r.json()["volume_type"]
    assert secret["is_public"] is False
    fault(await get(site, as_(site), f"types/{secret['id']}"), 404)
    fault(
        await post(site, as_(site), "volumes", {"volume": {"size": 1, "volume_type": "secret"}}),
        404,
        "Volume type with name secret could not be found.",
    )
    tid = secret["id"]
    r = await post(
        site, a, f"types/{tid}/extra_specs", {"extra_specs": {"multiattach": "<is> True", "k": "v"}}
    )
    assert r.status_code == 200 and r.json()["extra_specs"]["k"] == "v"
    assert (await shown(site, a, f"types/{tid}/extra_specs", "extra_specs")) == {
        "multiattach": "<is> True",
        "k": "v",
    }
    assert (await get(site, a, f"types/{tid}/extra_specs/k")).json() == {"k": "v"}
    r = await put(site, a, f"types/{tid}/extra_specs/k", {"k": "w"})
    assert r.json() == {"k": "w"}
    fault(
        await put(site, a, f"types/{tid}/extra_specs/k", {"j": "w"}),
        400,
        "Request body and URI mismatch",
    )
    assert (await delete(site, a, f"types/{tid}/extra_specs/k")).status_code == 202
    fault(
        await get(site, a, f"types/{tid}/extra_specs/k"),
        404,
        f"Volume Type {tid} has no extra specs with key k.",
    )
    r = await put(site, a, f"types/{tid}", {"volume_type": {"name": "shared", "is_public": True}})
    assert r.status_code == 200 and r.json()["volume_type"]["name"] == "shared"
    # a multiattach type makes multiattach volumes
    vol = await volume(site, as_(site), volume_type="shared")
    assert vol["multiattach"] is True
    await action(
        site, as_(site), vol["id"], "os-attach", {"instance_uuid": SERVER, "mountpoint": "/dev/vdb"}
    )
    other = "9b6f1c05-2222-4e6f-9d53-6a4c0f1a2b3c"
    r = await post(
        site,
        as_(site),
        "attachments",
        {"attachment": {"volume_uuid": vol["id"], "instance_uuid": other}},
    )
    assert r.status_code == 200, r.text
