"""Service-to-service calls follow the scope: a boot in Berlin takes its image from Denver."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from edgefed.testkit.asgi_fleet import FleetTransport
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import admin, fleet


async def upload_image(site: InProcessSite, headers: dict[str, str], data: bytes) -> dict:  # type: ignore[type-arg]
    r = await site.client.post(
        "/image/v2/images",
        json={
            "name": "debian",
            "disk_format": "qcow2",
            "container_format": "bare",
            "visibility": "public",
            "os_distro": "debian",
        },
        headers=headers,
    )
    assert r.status_code == 201, r.text
    image = r.json()
    r = await site.client.put(
        f"/image/v2/images/{image['id']}/file",
        content=data,
        headers={**headers, "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 204, r.text
    r = await site.client.get(f"/image/v2/images/{image['id']}", headers=headers)
    return r.json()  # type: ignore[no-any-return]


async def boot(site: InProcessSite, headers: dict[str, str], image_id: str, scope: str | None):  # type: ignore[no-untyped-def]
    h = dict(headers)
    if scope:
        h["X-Scope"] = scope
    return await site.client.post(
        "/compute/v2.1/servers",
        json={"server": {"name": "vm", "imageRef": image_id, "flavorRef": "1"}},
        headers=h,
    )


async def test_boot_fetches_verifies_and_caches_the_remote_image(tmp_path: Path) -> None:
    transport = FleetTransport()
    async with fleet(tmp_path, ["Berlin", "Denver"], joined=True, transport=transport) as s:
        berlin, denver = s["Berlin"], s["Denver"]
        token = admin(berlin)
        data = os.urandom(3 * 1024 * 1024 + 17)
        image = await upload_image(denver, admin(denver), data)

        # Without a scope Berlin does not know the image.
        r = await boot(berlin, token, image["id"], None)
        assert r.status_code == 400 and image["id"] in r.text

        r = await boot(berlin, token, image["id"], "{compute: Berlin, image: Denver}")
        assert r.status_code == 202, r.text

        # Berlin now holds the image: same id, same bytes, same metadata, from Denver.
        r = await berlin.client.get(f"/image/v2/images/{image['id']}", headers=token)
        assert r.status_code == 200
        cached = r.json()
        assert cached["os_hash_value"] == hashlib.sha512(data).hexdigest() == image["os_hash_value"]
        assert cached["os_distro"] == "debian" and cached["name"] == "debian"
        r = await berlin.client.get(f"/image/v2/images/{image['id']}/file", headers=token)
        assert r.content == data
        # The cached copy belongs to Denver: a local edit is refused, naming the source.
        r = await berlin.client.patch(
            f"/image/v2/images/{image['id']}",
            json=[{"op": "replace", "path": "/name", "value": "mine"}],
            headers={**token, "Content-Type": "application/openstack-images-v2.1-json-patch"},
        )
        assert r.status_code == 409 and "Denver" in r.text

        # Denver cut off: the next boot in Berlin still works, from the cache.
        transport.cut.add("denver.test")
        r = await boot(berlin, token, image["id"], "{compute: Berlin, image: Denver}")
        assert r.status_code == 202, r.text


async def test_unknown_image_at_every_scoped_site_is_a_clear_400(tmp_path: Path) -> None:
    transport = FleetTransport()
    async with fleet(
        tmp_path, ["Berlin", "Denver", "Paris"], joined=True, transport=transport
    ) as s:
        berlin = s["Berlin"]
        transport.cut.add("paris.test")
        r = await boot(
            berlin,
            admin(berlin),
            "4f5b2a53-5f7c-4b8e-9a1a-0e1d9ed6e4a1",
            "{compute: Berlin, image: Denver|Paris}",
        )
        assert r.status_code == 400
        message = r.json()["badRequest"]["message"]
        assert "Denver" in message and "Paris" in message
