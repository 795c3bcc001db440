"""A scope entry a request cannot honour is a 400 naming it, never silently ignored.

A boot at Berlin takes its image from the scope's image site, but its networks and boot
volumes only from Berlin; a snapshot, a volume made of an image and a volume uploaded
to an image use Berlin's image service only (docs/scope.md, "Which entries a request
honours")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import admin, fleet
from edgefed.testkit.wait import eventually

NOT_HONOURED = (
    "Scope entry '{service}: {entry}' cannot be honoured: {what} at Berlin use Berlin's own "
    "{service} service only. Name Berlin for {service} in the scope, or leave the entry out."
)


def scoped(site: InProcessSite, scope: str, **extra: str) -> dict[str, str]:
    return {**admin(site), "X-Scope": scope, **extra}


async def local_image(site: InProcessSite) -> str:
    h = admin(site)
    r = await site.client.post(
        "/image/v2/images",
        json={"name": "cirros", "disk_format": "raw", "container_format": "bare"},
        headers=h,
    )
    assert r.status_code == 201, r.text
    image_id: str = r.json()["id"]
    r = await site.client.put(
        f"/image/v2/images/{image_id}/file",
        content=b"\0" * 4096,
        headers={**h, "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 204, r.text
    return image_id


async def boot(site: InProcessSite, headers: dict[str, str], image_id: str, **more: Any) -> Any:
    server = {"name": "vm", "imageRef": image_id, "flavorRef": "1", **more}
    return await site.client.post("/compute/v2.1/servers", json={"server": server}, headers=headers)


def image_refused(r: Any, what: str) -> None:
    """``r`` is the 400 of an image entry (Denver) not honoured for ``what``."""
    assert r.status_code == 400, r.text
    assert r.json()["badRequest"]["message"] == NOT_HONOURED.format(
        service="image", entry="Denver", what=what
    )


async def status_is(site: InProcessSite, path: str, kind: str, wanted: str) -> None:
    """Once the ``kind`` (server, volume) at ``path`` has the status ``wanted``."""

    async def there() -> bool:
        r = await site.client.get(path, headers=admin(site))
        return bool(r.json()[kind]["status"] == wanted)

    await eventually(there, within=30.0, what=f"the {kind} {wanted.lower()}")


async def server_names(site: InProcessSite) -> set[str]:
    r = await site.client.get("/compute/v2.1/servers", headers=admin(site))
    return {s["name"] for s in r.json()["servers"]}


async def test_a_boot_refuses_a_network_entry_it_cannot_honour(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver", "Paris"], joined=True) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        image_id = await local_image(berlin)
        refused = NOT_HONOURED.format(
            service="network", entry="Denver", what="the networks of a server booted"
        )
        for site in (berlin, paris):  # asked at Berlin, or routed there from Paris
            r = await boot(site, scoped(site, "{compute: Berlin, network: Denver}"), image_id)
            assert r.status_code == 400, r.text
            assert r.json() == {"badRequest": {"code": 400, "message": refused}}
        assert await server_names(berlin) == set()
        scope = "{compute: Berlin, neutron: Denver|Berlin}"  # an alias, a fallback
        r = await boot(berlin, scoped(berlin, scope), image_id)
        assert r.status_code == 400
        assert "'network: Denver|Berlin' cannot be honoured" in r.json()["badRequest"]["message"]
        r = await boot(berlin, scoped(berlin, "{compute: Berlin, network: Nowhere}"), image_id)
        assert r.status_code == 400
        assert r.json()["badRequest"]["message"].startswith(
            "Invalid X-Scope header: scope entry 'network: Nowhere': unknown site 'Nowhere'"
        )

        # What Berlin satisfies by itself is honoured: its name, or it as the first choice.
        for scope in ("{compute: Berlin, network: Berlin}", "{network: Berlin|Denver}"):
            r = await boot(berlin, scoped(berlin, scope), image_id)
            assert r.status_code == 202, (scope, r.text)
        # A boot without networks does not consult the network service.
        r = await boot(
            berlin,
            scoped(berlin, "{network: Denver}", **{"X-OpenStack-Nova-API-Version": "2.37"}),
            image_id,
            networks="none",
        )
        assert r.status_code == 202, r.text
        # Calls that do not consult the network service ignore its entry, as they should:
        # the CLI sends one scope with every call of a command.
        r = await berlin.client.get(
            "/compute/v2.1/servers/detail", headers=scoped(berlin, "{network: Denver}")
        )
        assert r.status_code == 200 and len(r.json()["servers"]) == 3


async def test_volumes_and_images_made_here_refuse_entries_elsewhere(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver"], joined=True) as s:
        berlin = s["Berlin"]
        image_id = await local_image(berlin)
        here = "{compute: Berlin, volume: Berlin, image: Denver}"

        r = await berlin.client.post(
            "/volume/v3/volumes",
            json={"volume": {"size": 1, "imageRef": image_id}},
            headers=scoped(berlin, here),
        )
        image_refused(r, "volumes made from an image")

        from_image = {
            "boot_index": 0,
            "uuid": image_id,
            "source_type": "image",
            "destination_type": "volume",
            "volume_size": 1,
        }
        r = await boot(berlin, scoped(berlin, here), "", block_device_mapping_v2=[from_image])
        image_refused(r, "the images a server's boot volumes are made of")
        r = await boot(
            berlin,
            scoped(berlin, "{volume: Denver|Berlin}"),
            "",
            block_device_mapping_v2=[from_image],
        )
        assert r.status_code == 400, r.text
        assert r.json()["badRequest"]["message"].startswith(
            "Scope entry 'volume: Denver|Berlin' cannot be honoured: the volumes a server boots "
            "from at Berlin use Berlin's own volume service only."
        )

        r = await boot(berlin, admin(berlin), image_id)
        assert r.status_code == 202, r.text
        server_id = r.json()["server"]["id"]
        await status_is(berlin, f"/compute/v2.1/servers/{server_id}", "server", "ACTIVE")
        r = await berlin.client.post(
            f"/compute/v2.1/servers/{server_id}/action",
            json={"createImage": {"name": "snap"}},
            headers=scoped(berlin, here),
        )
        image_refused(r, "the snapshots of a server (createImage)")

        r = await berlin.client.post(
            "/volume/v3/volumes", json={"volume": {"size": 1}}, headers=admin(berlin)
        )
        assert r.status_code == 202, r.text
        volume_id = r.json()["volume"]["id"]
        await status_is(berlin, f"/volume/v3/volumes/{volume_id}", "volume", "available")
        r = await berlin.client.post(
            f"/volume/v3/volumes/{volume_id}/action",
            json={"os-volume_upload_image": {"image_name": "up"}},
            headers=scoped(berlin, here),
        )
        image_refused(r, "the images a volume is uploaded to")
        r = await berlin.client.get("/image/v2/images", headers=admin(berlin))
        assert {i["name"] for i in r.json()["images"]} == {"cirros"}
