"""The schemas the image API serves describe what it answers.

glanceclient (through warlock) validates every image it receives against
``/v2/schemas/image`` and refuses one that does not fit; so each document served, in
every state an image goes through, is checked here against the schema served.
``jsonschema`` comes with the dev tools (schemathesis, glanceclient's warlock).
"""

from __future__ import annotations

from typing import Any

import jsonschema
from image_testkit import upload

from edgefed.services.image.attributes import CONTAINER_FORMATS, DISK_FORMATS, READ_ONLY
from edgefed.store.image import ImageRepository
from edgefed.testkit.inprocess import InProcessSite

IMAGES = "/image/v2/images"


async def schema(site: InProcessSite, h: dict[str, str], name: str) -> dict[str, Any]:
    r = await site.client.get(f"/image/v2/schemas/{name}", headers=h)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def fits(document: Any, against: dict[str, Any]) -> None:
    validator = jsonschema.Draft4Validator(against)
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(document)]
    assert not errors, errors


async def test_every_state_of_an_image_fits_the_image_schema(
    site, admin_headers, new_image, project_headers
) -> None:
    alice = project_headers("p-alice")
    image = await schema(site, alice, "image")
    queued = await new_image(alice, hw_disk_bus="scsi", tags=["a"])
    bare = (await site.client.post(IMAGES, json={}, headers=alice)).json()
    active = await new_image(alice, min_ram=512, protected=True)
    await upload(site, alice, active["id"], b"data")
    deactivated = await new_image(alice)
    await upload(site, alice, deactivated["id"], b"more")
    await site.client.post(f"{IMAGES}/{deactivated['id']}/actions/deactivate", headers=alice)
    staged = await new_image(alice)
    await site.client.put(
        f"{IMAGES}/{staged['id']}/stage",
        content=b"x",
        headers={**alice, "Content-Type": "application/octet-stream"},
    )
    synced = await ImageRepository(site.app.state.ctx.store).create(
        owner="p-alice", name="from-paris", origin="Paris"
    )
    ids = [queued["id"], bare["id"], active["id"], deactivated["id"], staged["id"], synced.id]
    statuses = set()
    for image_id in ids:
        doc = (await site.client.get(f"{IMAGES}/{image_id}", headers=admin_headers)).json()
        fits(doc, image)
        statuses.add(doc["status"])
    assert statuses == {"queued", "active", "deactivated", "uploading"}
    listing = (await site.client.get(IMAGES, headers=admin_headers)).json()
    fits(listing, await schema(site, alice, "images"))
    assert len(listing["images"]) == len(ids)


async def test_members_fit_the_member_schemas(site, new_image, project_headers) -> None:
    alice = project_headers("p-alice")
    img = await new_image(alice)
    r = await site.client.post(
        f"{IMAGES}/{img['id']}/members", json={"member": "p-bob"}, headers=alice
    )
    fits(r.json(), await schema(site, alice, "member"))
    members = (await site.client.get(f"{IMAGES}/{img['id']}/members", headers=alice)).json()
    fits(members, await schema(site, alice, "members"))


async def test_the_schema_offers_what_the_api_takes(site, admin_headers) -> None:
    image = (await schema(site, admin_headers, "image"))["properties"]
    assert image["disk_format"]["enum"] == [None, *DISK_FORMATS]
    assert image["container_format"]["enum"] == [None, *CONTAINER_FORMATS]
    # What the server computes is read-only in the schema, so clients never send it.
    for name in ("status", "checksum", "os_hash_algo", "os_hash_value", "size", "virtual_size"):
        assert name in READ_ONLY and image[name].get("readOnly") is True, name
    for name in ("name", "visibility", "protected", "os_hidden", "tags", "min_ram", "min_disk"):
        assert not image[name].get("readOnly"), name


async def test_a_document_the_api_refuses_does_not_fit_the_schema_either(site, admin_headers):
    image = await schema(site, admin_headers, "image")
    for bad in ({"disk_format": "floppy"}, {"visibility": "secret"}, {"protected": "yes"}):
        assert list(jsonschema.Draft4Validator(image).iter_errors(bad)), bad
        r = await site.client.post(IMAGES, json=bad, headers=admin_headers)
        assert r.status_code == 400, (bad, r.text)
