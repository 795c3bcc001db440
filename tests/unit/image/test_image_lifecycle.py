"""An image from create to delete: the defaults it starts with, protection, the
deactivated state, and what a delete takes with it."""

from __future__ import annotations

import asyncio
import uuid

from image_testkit import patch, upload

from edgefed.testkit.inprocess import InProcessSite

IMAGES = "/image/v2/images"


def refused(r, status: int, message: str) -> None:
    assert r.status_code == status, r.text
    assert message in r.json()["message"], r.json()


async def action(site: InProcessSite, h: dict[str, str], image_id: str, name: str):
    return await site.client.post(f"{IMAGES}/{image_id}/actions/{name}", headers=h)


async def test_a_new_image_is_queued_shared_and_owned_by_the_callers_project(
    site, project_headers
) -> None:
    alice = project_headers("p-alice")
    r = await site.client.post(IMAGES, json={}, headers=alice)
    assert r.status_code == 201, r.text
    assert r.headers["openstack-image-import-methods"] == "glance-direct"
    img = r.json()
    assert (img["status"], img["visibility"], img["owner"]) == ("queued", "shared", "p-alice")
    assert (img["name"], img["disk_format"], img["container_format"]) == (None, None, None)
    assert (img["min_disk"], img["min_ram"], img["protected"], img["os_hidden"]) == (
        0,
        0,
        False,
        False,
    )
    assert (img["size"], img["checksum"], img["os_hash_algo"], img["tags"]) == (
        None,
        None,
        None,
        [],
    )
    assert img["created_at"] == img["updated_at"] and img["created_at"].endswith("Z")
    assert (img["file"], img["schema"]) == (f"/v2/images/{img['id']}/file", "/v2/schemas/image")
    assert "edgefed:origin" not in img


async def test_an_empty_or_non_object_body_creates_nothing(site, project_headers) -> None:
    alice = project_headers("p-alice")
    json_type = {**alice, "Content-Type": "application/json"}
    r = await site.client.post(IMAGES, content=b"", headers=json_type)
    refused(r, 400, "The request body is empty; a JSON document is required.")
    r = await site.client.post(IMAGES, content=b'"an image"', headers=json_type)
    refused(r, 400, "The request body must be a JSON object describing the image.")
    assert (await site.client.get(IMAGES, headers=alice)).json()["images"] == []


async def test_a_protected_image_is_changed_but_never_deleted_until_unprotected(
    site, admin_headers, new_image, project_headers
) -> None:
    alice = project_headers("p-alice")
    img = await new_image(alice, protected=True)
    r = await patch(site, alice, img["id"], [{"op": "replace", "path": "/name", "value": "kept"}])
    assert r.status_code == 200 and r.json()["name"] == "kept"
    message = f"Image {img['id']} is protected and cannot be deleted."
    refused(await site.client.delete(f"{IMAGES}/{img['id']}", headers=alice), 403, message)
    # Not even an admin: protection is a property of the image, not a policy.
    refused(await site.client.delete(f"{IMAGES}/{img['id']}", headers=admin_headers), 403, message)
    await patch(site, alice, img["id"], [{"op": "replace", "path": "/protected", "value": False}])
    assert (await site.client.delete(f"{IMAGES}/{img['id']}", headers=alice)).status_code == 204


async def test_deactivation_is_idempotent_and_leaves_the_metadata_writable(
    site, new_image, project_headers
) -> None:
    alice = project_headers("p-alice")
    img = await new_image(alice)
    await upload(site, alice, img["id"], b"data")
    # Reactivating an active image, or deactivating twice, changes nothing.
    assert (await action(site, alice, img["id"], "reactivate")).status_code == 204
    for _ in range(2):
        assert (await action(site, alice, img["id"], "deactivate")).status_code == 204
    r = await patch(site, alice, img["id"], [{"op": "add", "path": "/note", "value": "paused"}])
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["note"]) == ("deactivated", "paused")
    listed = (await site.client.get(f"{IMAGES}?status=deactivated", headers=alice)).json()
    assert [i["id"] for i in listed["images"]] == [img["id"]]
    assert (await action(site, alice, img["id"], "reactivate")).status_code == 204
    listed = (await site.client.get(f"{IMAGES}?status=active", headers=alice)).json()
    assert [i["id"] for i in listed["images"]] == [img["id"]]


async def test_only_images_with_data_are_deactivated_and_only_by_members(
    site, new_image, project_headers
) -> None:
    alice = project_headers("p-alice")
    queued = await new_image(alice)
    for name in ("deactivate", "reactivate"):
        refused(
            await action(site, alice, queued["id"], name),
            403,
            f"Not allowed to {name} image in status 'queued'.",
        )
    img = await new_image(alice)
    await upload(site, alice, img["id"], b"data")
    refused(
        await action(site, project_headers("p-alice", "reader"), img["id"], "deactivate"),
        403,
        f"You are not authorized to deactivate image {img['id']}",
    )
    refused(
        await action(site, project_headers("p-bob"), img["id"], "deactivate"),
        404,
        f"No image found with ID {img['id']}",
    )
    r = await site.client.get(f"{IMAGES}/{img['id']}", headers=alice)
    assert r.json()["status"] == "active"


async def test_a_deleted_image_takes_its_members_even_if_its_id_comes_back(
    site, new_image, project_headers
) -> None:
    alice, bob = project_headers("p-alice"), project_headers("p-bob")
    image_id = str(uuid.uuid4())
    await new_image(alice, id=image_id)
    r = await site.client.post(
        f"{IMAGES}/{image_id}/members", json={"member": "p-bob"}, headers=alice
    )
    assert r.status_code == 200
    await site.client.put(
        f"{IMAGES}/{image_id}/members/p-bob", json={"status": "accepted"}, headers=bob
    )
    assert (await site.client.delete(f"{IMAGES}/{image_id}", headers=alice)).status_code == 204
    refused(
        await site.client.get(f"{IMAGES}/{image_id}/members", headers=alice),
        404,
        f"No image found with ID {image_id}",
    )
    # A new image under the same id is not shared with the old one's members.
    await new_image(alice, id=image_id, name="new")
    members = (await site.client.get(f"{IMAGES}/{image_id}/members", headers=alice)).json()
    assert members["members"] == []
    refused(await site.client.get(f"{IMAGES}/{image_id}", headers=bob), 404, "No image found")
    assert (await site.client.get(IMAGES, headers=bob)).json()["images"] == []


async def test_a_deleted_images_tags_and_data_go_with_it(
    site, admin_headers, new_image, project_headers
) -> None:
    alice = project_headers("p-alice")
    img = await new_image(alice, tags=["gold"])
    await upload(site, alice, img["id"], b"payload")
    assert (await site.client.delete(f"{IMAGES}/{img['id']}", headers=alice)).status_code == 204
    for path in ("", "/file", "/tags/gold"):
        method = "PUT" if path.startswith("/tags") else "GET"
        r = await site.client.request(method, f"{IMAGES}/{img['id']}{path}", headers=admin_headers)
        refused(r, 404, f"No image found with ID {img['id']}")
    assert (await site.client.get(f"{IMAGES}?tag=gold", headers=admin_headers)).json()[
        "images"
    ] == []


async def test_racing_images_with_one_id_make_one_image(site, admin_headers) -> None:
    image_id = "6f2c1d9e-0b7a-4c55-9d3e-2a1b0c9d8e7f"
    answers = await asyncio.gather(
        *(
            site.client.post(IMAGES, json={"id": image_id, "name": f"n{n}"}, headers=admin_headers)
            for n in range(4)
        )
    )
    assert sorted(r.status_code for r in answers) == [201, 409, 409, 409]
    r = await site.client.get(IMAGES, headers=admin_headers)
    assert [i["id"] for i in r.json()["images"]] == [image_id]
