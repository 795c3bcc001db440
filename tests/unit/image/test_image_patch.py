"""Updating an image with Glance's JSON patch: tags by index and by append, the tag
limit, properties with odd names, ownership, and patches refused as a whole."""

from __future__ import annotations

from typing import Any

from image_testkit import patch

from edgefed.store.image import ImageRepository
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.tokens import forge_token

IMAGES = "/image/v2/images"


async def shown(site: InProcessSite, h: dict[str, str], image_id: str) -> dict[str, Any]:
    r = await site.client.get(f"{IMAGES}/{image_id}", headers=h)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def patched(site: InProcessSite, h: dict[str, str], image_id: str, *ops: dict[str, Any]):
    r = await patch(site, h, image_id, list(ops))
    assert r.status_code == 200, r.text
    return r.json()


def refused(r, status: int, message: str) -> None:
    assert r.status_code == status, r.text
    assert message in r.json()["message"], r.json()


# -- tags -------------------------------------------------------------------------------------


async def test_tags_are_inserted_replaced_and_removed_by_index(site, admin_headers, new_image):
    img = await new_image(tags=["a", "b", "c"])
    doc = await patched(
        site, admin_headers, img["id"], {"op": "add", "path": "/tags/0", "value": "z"}
    )
    assert doc["tags"] == ["z", "a", "b", "c"]
    doc = await patched(
        site, admin_headers, img["id"], {"op": "add", "path": "/tags/4", "value": "end"}
    )
    assert doc["tags"] == ["z", "a", "b", "c", "end"]
    doc = await patched(
        site, admin_headers, img["id"], {"op": "replace", "path": "/tags/1", "value": "A"}
    )
    assert doc["tags"] == ["z", "A", "b", "c", "end"]
    doc = await patched(site, admin_headers, img["id"], {"op": "remove", "path": "/tags/2"})
    assert doc["tags"] == ["z", "A", "c", "end"]
    # A duplicate is kept once, where it first stands.
    doc = await patched(
        site, admin_headers, img["id"], {"op": "add", "path": "/tags/0", "value": "c"}
    )
    assert doc["tags"] == ["c", "z", "A", "end"]
    doc = await patched(
        site, admin_headers, img["id"], {"op": "add", "path": "/tags/-", "value": "z"}
    )
    assert doc["tags"] == ["c", "z", "A", "end"]
    assert (await shown(site, admin_headers, img["id"]))["tags"] == ["c", "z", "A", "end"]


async def test_tag_paths_out_of_range_or_not_a_number_are_refused(site, admin_headers, new_image):
    img = await new_image(tags=["a"])
    cases = [
        ({"op": "remove", "path": "/tags/1"}, 409, "Tag index 1 is out of range."),
        ({"op": "replace", "path": "/tags/5", "value": "x"}, 409, "Tag index 5 is out of range."),
        ({"op": "add", "path": "/tags/2", "value": "x"}, 409, "Tag index 2 is out of range."),
        ({"op": "add", "path": "/tags/-1", "value": "x"}, 409, "Tag index -1 is out of range."),
        ({"op": "add", "path": "/tags/first", "value": "x"}, 400, "Invalid tag index 'first'"),
        ({"op": "add", "path": "/tags/-", "value": ""}, 400, "tags are non-empty strings"),
        ({"op": "add", "path": "/tags/-", "value": 5}, 400, "tags are non-empty strings"),
        ({"op": "add", "path": "/tags/-", "value": "t" * 256}, 400, "longer than 255"),
        ({"op": "add", "path": "/tags", "value": "a,b"}, 400, "is not of type 'array'"),
        ({"op": "add", "path": "/tags/0/x", "value": "x"}, 400, "Invalid JSON pointer"),
    ]
    for op, status, message in cases:
        refused(await patch(site, admin_headers, img["id"], [op]), status, message)
    assert (await shown(site, admin_headers, img["id"]))["tags"] == ["a"]


async def test_no_way_of_tagging_goes_past_128_tags(site, admin_headers, new_image) -> None:
    full = [f"t{i}" for i in range(128)]
    img = await new_image(tags=full)
    limit = "An image may have at most 128 tags."
    for op in (
        {"op": "add", "path": "/tags/-", "value": "one-more"},
        {"op": "add", "path": "/tags/0", "value": "one-more"},
    ):
        refused(await patch(site, admin_headers, img["id"], [op]), 403, limit)
    refused(
        await site.client.put(f"{IMAGES}/{img['id']}/tags/one-more", headers=admin_headers),
        403,
        limit,
    )
    r = await patch(
        site, admin_headers, img["id"], [{"op": "replace", "path": "/tags", "value": [*full, "x"]}]
    )
    refused(r, 400, "An image may have at most 128 tags")
    assert (await shown(site, admin_headers, img["id"]))["tags"] == full
    # Room is made by removing one first, in the same patch.
    doc = await patched(
        site,
        admin_headers,
        img["id"],
        {"op": "remove", "path": "/tags/0"},
        {"op": "add", "path": "/tags/-", "value": "one-more"},
    )
    assert len(doc["tags"]) == 128 and doc["tags"][-1] == "one-more"
    # Tagging with a tag it has is no addition.
    r = await site.client.put(f"{IMAGES}/{img['id']}/tags/t5", headers=admin_headers)
    assert r.status_code == 204


# -- properties and base attributes ----------------------------------------------------------


async def test_property_names_may_hold_slashes_and_tildes(site, admin_headers, new_image) -> None:
    img = await new_image()
    doc = await patched(
        site,
        admin_headers,
        img["id"],
        {"op": "add", "path": "/os~1type", "value": "linux"},
        {"op": "add", "path": "/a~0b", "value": "tilde"},
    )
    assert (doc["os/type"], doc["a~b"]) == ("linux", "tilde")
    doc = await patched(site, admin_headers, img["id"], {"op": "remove", "path": "/os~1type"})
    assert "os/type" not in doc and doc["a~b"] == "tilde"


async def test_a_property_is_added_replaced_and_must_exist_to_be_replaced(
    site, admin_headers, new_image
):
    img = await new_image(hw_cpu_cores="2")
    doc = await patched(
        site, admin_headers, img["id"], {"op": "replace", "path": "/hw_cpu_cores", "value": "4"}
    )
    assert doc["hw_cpu_cores"] == "4"
    # add on an existing property replaces it, as JSON patch says.
    doc = await patched(
        site, admin_headers, img["id"], {"op": "add", "path": "/hw_cpu_cores", "value": "8"}
    )
    assert doc["hw_cpu_cores"] == "8"
    refused(
        await patch(
            site, admin_headers, img["id"], [{"op": "add", "path": "/hw_cpu_cores", "value": 8}]
        ),
        400,
        "Invalid value for property 'hw_cpu_cores': 8 is not of type 'string'",
    )
    refused(
        await patch(
            site, admin_headers, img["id"], [{"op": "add", "path": "/" + "k" * 256, "value": "v"}]
        ),
        400,
        "Property names must have 1 to 255 characters",
    )
    assert (await shown(site, admin_headers, img["id"]))["hw_cpu_cores"] == "8"


async def test_base_attributes_take_their_types_and_null_where_glance_allows(
    site, admin_headers, new_image
) -> None:
    img = await new_image(name="n", min_disk=1)
    doc = await patched(
        site,
        admin_headers,
        img["id"],
        {"op": "replace", "path": "/name", "value": None},
        {"op": "replace", "path": "/disk_format", "value": None},
        {"op": "replace", "path": "/min_disk", "value": 0},
        {"op": "replace", "path": "/os_hidden", "value": True},
        {"op": "replace", "path": "/protected", "value": True},
    )
    assert (doc["name"], doc["disk_format"], doc["min_disk"]) == (None, None, 0)
    assert (doc["os_hidden"], doc["protected"]) == (True, True)
    for op, message in (
        (
            {"op": "replace", "path": "/visibility", "value": None},
            "Invalid value None for 'visibility'",
        ),
        ({"op": "replace", "path": "/min_ram", "value": 2**31}, "'min_ram' is too large"),
        ({"op": "replace", "path": "/min_ram", "value": True}, "True is not of type 'integer'"),
        ({"op": "replace", "path": "/os_hidden", "value": 1}, "1 is not of type 'boolean'"),
        ({"op": "replace", "path": "/name", "value": "n" * 256}, "'name' is longer than 255"),
        ({"op": "replace", "path": "/owner", "value": None}, "None is not of type 'string'"),
    ):
        refused(await patch(site, admin_headers, img["id"], [op]), 400, message)
    assert (await shown(site, admin_headers, img["id"]))["min_disk"] == 0


async def test_a_patch_with_one_bad_operation_changes_nothing(
    site, admin_headers, new_image
) -> None:
    img = await new_image(name="before", tags=["keep"], note="n")
    r = await patch(
        site,
        admin_headers,
        img["id"],
        [
            {"op": "replace", "path": "/name", "value": "after"},
            {"op": "add", "path": "/tags/-", "value": "new"},
            {"op": "remove", "path": "/note"},
            {"op": "replace", "path": "/checksum", "value": "x"},
        ],
    )
    refused(r, 403, "Attribute 'checksum' is read-only.")
    doc = await shown(site, admin_headers, img["id"])
    assert (doc["name"], doc["tags"], doc["note"]) == ("before", ["keep"], "n")


async def test_an_empty_patch_changes_nothing_and_answers_the_image(site, admin_headers, new_image):
    img = await new_image()
    doc = await patched(site, admin_headers, img["id"])
    assert doc == await shown(site, admin_headers, img["id"])


async def test_the_older_patch_media_type_is_accepted(site, admin_headers, new_image) -> None:
    img = await new_image()
    r = await site.client.patch(
        f"{IMAGES}/{img['id']}",
        content=b'[{"op": "replace", "path": "/name", "value": "old-style"}]',
        headers={
            **admin_headers,
            "Content-Type": "application/openstack-images-v2.0-json-patch; charset=UTF-8",
        },
    )
    assert r.status_code == 200 and r.json()["name"] == "old-style"
    r = await site.client.patch(f"{IMAGES}/{img['id']}", content=b"[]", headers=admin_headers)
    assert r.status_code == 415
    assert "application/openstack-images-v2.1-json-patch" in r.headers["accept-patch"]


# -- who may patch what -----------------------------------------------------------------------


async def test_only_an_admin_gives_an_image_to_another_project(
    site, admin_headers, new_image, project_headers
) -> None:
    alice = project_headers("p-alice")
    img = await new_image(alice)
    r = await patch(site, alice, img["id"], [{"op": "replace", "path": "/owner", "value": "p-bob"}])
    refused(r, 403, "Only an administrator may give an image to another project.")
    # Naming the owner it has is no transfer.
    assert (
        await patched(
            site, alice, img["id"], {"op": "replace", "path": "/owner", "value": "p-alice"}
        )
    )["owner"] == "p-alice"
    doc = await patched(
        site, admin_headers, img["id"], {"op": "replace", "path": "/owner", "value": "p-bob"}
    )
    assert doc["owner"] == "p-bob"
    # Alice no longer owns it: it is shared, she is no member, so it is gone for her.
    r = await site.client.get(f"{IMAGES}/{img['id']}", headers=alice)
    assert r.status_code == 404
    bob = project_headers("p-bob")
    assert (
        await patched(site, bob, img["id"], {"op": "replace", "path": "/name", "value": "bobs"})
    )["name"] == "bobs"


async def test_an_admin_creates_an_image_for_another_project(site, admin_headers, project_headers):
    r = await site.client.post(
        IMAGES, json={"name": "given", "owner": "p-bob"}, headers=project_headers("p-alice")
    )
    refused(r, 403, "You are not permitted to create images owned by another project.")
    r = await site.client.post(
        IMAGES, json={"name": "given", "owner": "p-bob"}, headers=admin_headers
    )
    assert r.status_code == 201 and r.json()["owner"] == "p-bob"
    bob = project_headers("p-bob")
    assert (await shown(site, bob, r.json()["id"]))["name"] == "given"


async def test_a_reader_or_unscoped_caller_creates_no_image(site, project_headers) -> None:
    r = await site.client.post(
        IMAGES, json={"name": "r"}, headers=project_headers("p-alice", "reader")
    )
    refused(r, 403, "member role required")
    ctx = site.app.state.ctx
    unscoped = {"X-Auth-Token": forge_token(ctx, user="u", project=None, role="member")}
    refused(
        await site.client.post(IMAGES, json={"name": "u"}, headers=unscoped),
        403,
        "project-scoped token",
    )


async def test_a_synced_image_refuses_tags_and_actions_here(site, admin_headers) -> None:
    rec = await ImageRepository(site.app.state.ctx.store).create(
        owner="p-x", name="from-paris", origin="Paris"
    )
    for r in (
        await site.client.put(f"{IMAGES}/{rec.id}/tags/gold", headers=admin_headers),
        await site.client.delete(f"{IMAGES}/{rec.id}/tags/gold", headers=admin_headers),
        await site.client.post(f"{IMAGES}/{rec.id}/actions/deactivate", headers=admin_headers),
    ):
        assert r.status_code == 409, r.text
        assert "synchronised from site Paris" in r.json()["message"]
    doc = await shown(site, admin_headers, rec.id)
    assert (doc["tags"], doc["edgefed:origin"]) == ([], "Paris")
