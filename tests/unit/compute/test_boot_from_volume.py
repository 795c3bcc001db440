"""``block_device_mapping_v2`` with volumes: a server boots from a volume (an existing
one, or one made of an image, as ``openstack server create --boot-from-volume`` asks),
gets other volumes from the start, and frees or deletes them when it goes; mistakes
are 400s naming the mapping, with nothing made."""

from __future__ import annotations

from typing import Any

from compute_testkit import CINDER, VOL, fake, make_image, new_volume, volume, wait_for

C = "/compute/v2.1"


async def create(site: Any, h: dict[str, str], bdms: list[dict[str, Any]], **extra: Any) -> Any:
    server = {
        "name": "bfv",
        "imageRef": "",
        "flavorRef": "1",
        "networks": "none",
        "block_device_mapping_v2": bdms,
        **extra,
    }
    return await site.client.post(f"{C}/servers", json={"server": server}, headers=h)


async def volumes_of_project(site: Any, h: dict[str, str]) -> list[dict[str, Any]]:
    r = await site.client.get(f"{VOL}/volumes/detail", headers={**h, **CINDER})
    return r.json()["volumes"]  # type: ignore[no-any-return]


async def test_boot_from_an_existing_volume(site, h):
    volume_id = await new_volume(site, h)
    r = await create(
        site, h, [{"uuid": volume_id, "source_type": "volume", "destination_type": "volume",
                   "boot_index": 0}],
    )  # fmt: skip
    assert r.status_code == 202, r.text
    server_id = r.json()["server"]["id"]
    server = await wait_for(site, h, server_id, "ACTIVE")
    assert server["image"] == ""
    assert server["os-extended-volumes:volumes_attached"] == [
        {"id": volume_id, "delete_on_termination": False}
    ]
    spec = fake(site).instances[server_id].spec
    assert spec.root_volume is not None and spec.root_volume.volume_id == volume_id
    assert spec.root_volume.path.exists() and spec.image is None
    shown = await volume(site, h, volume_id)
    assert shown["status"] == "in-use"
    assert shown["attachments"][0]["device"] == "/dev/vda"
    # the root disk stays while the server lives
    r = await site.client.delete(
        f"{C}/servers/{server_id}/os-volume_attachments/{volume_id}", headers=h
    )
    assert r.status_code == 400 and "root" in r.text
    assert (await site.client.delete(f"{C}/servers/{server_id}", headers=h)).status_code == 204
    await wait_for(site, h, server_id, "DELETED")
    assert (await volume(site, h, volume_id))["status"] == "available"


async def test_boot_from_a_volume_made_of_an_image_and_one_more(site, h):
    image_id = await make_image(site, disk_format="raw", data=b"\x00" * 4096)
    extra = await new_volume(site, h)
    r = await create(
        site,
        h,
        [
            {"uuid": image_id, "source_type": "image", "destination_type": "volume",
             "boot_index": 0, "volume_size": 1, "delete_on_termination": True},
            {"uuid": extra, "source_type": "volume", "destination_type": "volume"},
        ],
    )  # fmt: skip
    assert r.status_code == 202, r.text
    server_id = r.json()["server"]["id"]
    server = await wait_for(site, h, server_id, "ACTIVE")
    attached = server["os-extended-volumes:volumes_attached"]
    assert len(attached) == 2 and attached[1] == {"id": extra, "delete_on_termination": False}
    root_id = attached[0]["id"]
    root = await volume(site, h, root_id)
    assert root["bootable"] == "true" and root["size"] == 1 and root["status"] == "in-use"
    assert root["volume_image_metadata"]["image_id"] == image_id
    assert set(fake(site).instances[server_id].volumes) == {root_id, extra}
    listed = await site.client.get(f"{C}/servers/{server_id}/os-volume_attachments", headers=h)
    devices = {a["volumeId"]: a["device"] for a in listed.json()["volumeAttachments"]}
    assert devices == {root_id: "/dev/vda", extra: "/dev/vdb"}

    assert (await site.client.delete(f"{C}/servers/{server_id}", headers=h)).status_code == 204
    await wait_for(site, h, server_id, "DELETED")
    r = await site.client.get(f"{VOL}/volumes/{root_id}", headers={**h, **CINDER})
    assert r.status_code == 404  # deleted with the server, as asked
    assert (await volume(site, h, extra))["status"] == "available"


async def test_mistaken_mappings_are_refused_with_nothing_made(site, h):
    image_id = await make_image(site, disk_format="raw", data=b"\x00" * 4096)
    in_use = await new_volume(site, h)
    holder = await create(site, h, [{"uuid": in_use, "source_type": "volume", "boot_index": 0}])
    await wait_for(site, h, holder.json()["server"]["id"], "ACTIVE")
    before = len(await volumes_of_project(site, h))
    cases = [
        ([{"uuid": in_use, "source_type": "volume", "boot_index": 0}], "in-use"),
        ([{"uuid": "0c2e0f7e-5d0c-4c7e-9f8e-3b1b1a6f5d11", "source_type": "volume",
           "boot_index": 0}], "0c2e0f7e-5d0c-4c7e-9f8e-3b1b1a6f5d11"),
        ([{"uuid": image_id, "source_type": "image", "destination_type": "volume",
           "boot_index": 0}], "volume_size"),
        ([{"uuid": in_use, "source_type": "snapshot", "boot_index": 0}], "snapshot"),
        ([{"source_type": "blank", "destination_type": "volume", "volume_size": 1,
           "boot_index": 0},
          {"source_type": "blank", "destination_type": "volume", "volume_size": 1,
           "boot_index": 0}], "Boot sequence"),
        ([{"uuid": image_id, "source_type": "image", "destination_type": "volume",
           "boot_index": 0, "volume_size": 100000}], "gigabytes"),
        ([], "imageRef"),
    ]  # fmt: skip
    for bdms, named in cases:
        r = await create(site, h, bdms)
        assert 400 <= r.status_code < 500, (bdms, r.text)
        assert named in r.text, (bdms, r.text)
    assert len(await volumes_of_project(site, h)) == before
