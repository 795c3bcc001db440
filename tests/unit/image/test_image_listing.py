"""``GET /v2/images`` as a Glance client pages through it: default order, sort keys and
directions, filters combined, visibility across projects, and links that keep the
query."""

from __future__ import annotations

from typing import Any

from image_testkit import upload

from edgefed.testkit.inprocess import InProcessSite

IMAGES = "/image/v2/images"


async def page(site: InProcessSite, h: dict[str, str], query: str = "") -> dict[str, Any]:
    r = await site.client.get(f"{IMAGES}{query}", headers=h)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def names(site: InProcessSite, h: dict[str, str], query: str = "") -> list[str]:
    return [i["name"] for i in (await page(site, h, query))["images"]]


def refused(r, message: str) -> None:
    assert r.status_code == 400, r.text
    assert message in r.json()["message"], r.json()


async def test_the_newest_image_comes_first(site, admin_headers, new_image) -> None:
    for name in ("first", "second", "third"):
        await new_image(name=name)
    assert await names(site, admin_headers) == ["third", "second", "first"]
    assert await names(site, admin_headers, "?sort_dir=asc") == ["first", "second", "third"]
    assert await names(site, admin_headers, "?sort=created_at:asc") == ["first", "second", "third"]


async def test_sort_keys_combine_each_with_its_direction(site, admin_headers, new_image) -> None:
    await new_image(name="b", min_ram=512)
    await new_image(name="a", min_ram=512)
    await new_image(name="c", min_ram=256)
    await new_image(name="d", min_ram=1024)
    assert await names(site, admin_headers, "?sort=min_ram:asc,name:asc") == ["c", "a", "b", "d"]
    assert await names(site, admin_headers, "?sort=min_ram:desc,name:asc") == ["d", "a", "b", "c"]
    # sort_key/sort_dir pairs say the same.
    query = "?sort_key=min_ram&sort_dir=asc&sort_key=name&sort_dir=desc"
    assert await names(site, admin_headers, query) == ["c", "b", "a", "d"]
    # One sort_dir applies to every key; a key without a direction is descending.
    assert await names(site, admin_headers, "?sort_key=min_ram&sort_key=name&sort_dir=asc") == [
        "c",
        "a",
        "b",
        "d",
    ]
    assert await names(site, admin_headers, "?sort=name") == ["d", "c", "b", "a"]


async def test_images_without_a_value_sort_last_going_up_and_first_going_down(
    site, admin_headers, new_image
) -> None:
    small, big = await new_image(name="small"), await new_image(name="big")
    await new_image(name="empty")
    await upload(site, admin_headers, small["id"], b"x")
    await upload(site, admin_headers, big["id"], b"x" * 100)
    assert await names(site, admin_headers, "?sort=size:asc") == ["small", "big", "empty"]
    assert await names(site, admin_headers, "?sort=size:desc") == ["empty", "big", "small"]
    # Size filters only match images that have data.
    assert await names(site, admin_headers, "?size_min=0") == ["big", "small"]
    assert await names(site, admin_headers, "?size_max=50") == ["small"]


async def test_paging_with_next_links_visits_every_image_once(site, admin_headers, new_image):
    for n in range(7):
        await new_image(name=f"img-{n}", disk_format="raw" if n % 2 else "qcow2")
    seen: list[str] = []
    doc = await page(site, admin_headers, "?limit=3&sort=name:asc&disk_format=in:raw,qcow2")
    assert doc["first"] == "/v2/images?limit=3&sort=name%3Aasc&disk_format=in%3Araw%2Cqcow2"
    pages = 1
    while True:
        seen += [i["name"] for i in doc["images"]]
        if "next" not in doc:
            break
        # Every next link keeps the query and moves the marker.
        assert "disk_format=in%3Araw%2Cqcow2" in doc["next"] and "limit=3" in doc["next"]
        doc = await page(site, admin_headers, doc["next"].removeprefix("/v2/images"))
        pages += 1
    assert seen == [f"img-{n}" for n in range(7)] and pages == 3
    # A page that ends exactly at the last image has no next link.
    doc = await page(site, admin_headers, "?limit=7")
    assert len(doc["images"]) == 7 and "next" not in doc
    assert (await page(site, admin_headers, "?limit=0"))["images"] == []


async def test_a_marker_must_be_an_image_of_the_listing(
    site, admin_headers, new_image, project_headers
) -> None:
    alice, bob = project_headers("p-alice"), project_headers("p-bob")
    private = await new_image(alice, name="mine", visibility="private")
    doc = await page(site, alice, f"?marker={private['id']}")
    assert doc["images"] == []
    # Bob cannot page from an image he does not see: its existence does not leak.
    r = await site.client.get(f"{IMAGES}?marker={private['id']}", headers=bob)
    refused(r, f"Invalid marker: no image with ID {private['id']} in this listing.")


async def test_bad_list_parameters_are_refused_naming_them(site, admin_headers) -> None:
    cases = {
        "?sort=name:asc&sort_key=name": "The 'sort' parameter cannot be mixed",
        "?sort_key=name&sort_key=id&sort_dir=asc&sort_dir=desc&sort_dir=asc": (
            "The number of sort_dir values must match the number of sort_key."
        ),
        "?sort=colour:asc": "Invalid sort key 'colour'",
        "?sort=name:up": "Invalid sort direction 'up': must be asc or desc",
        "?size_min=-1": "size_min must be 0 or more",
        "?size_max=big": "size_max must be an integer, got 'big'",
        "?os_hidden=maybe": "os_hidden must be true or false, got 'maybe'",
        "?visibility=secret": "Invalid visibility 'secret'",
        "?member_status=maybe": "Invalid member_status 'maybe'",
    }
    for query, message in cases.items():
        refused(await site.client.get(f"{IMAGES}{query}", headers=admin_headers), message)


async def test_filters_combine_tags_properties_and_in_lists(site, admin_headers, new_image):
    await new_image(name="both", tags=["gold", "lts"], os_distro="debian")
    await new_image(name="gold-only", tags=["gold"], os_distro="debian")
    await new_image(name="ubuntu", tags=["gold", "lts"], os_distro="ubuntu")
    await new_image(name="bare", disk_format="raw")
    sort = "&sort=name:asc"
    assert await names(site, admin_headers, "?tag=gold&tag=lts" + sort) == ["both", "ubuntu"]
    assert await names(site, admin_headers, "?tag=gold&os_distro=debian" + sort) == [
        "both",
        "gold-only",
    ]
    assert await names(site, admin_headers, "?name=in:bare, ubuntu" + sort) == ["bare", "ubuntu"]
    assert await names(site, admin_headers, "?disk_format=raw") == ["bare"]
    assert await names(site, admin_headers, "?os_distro=arch") == []
    assert await names(site, admin_headers, "?status=queued&container_format=bare" + sort) == [
        "bare",
        "both",
        "gold-only",
        "ubuntu",
    ]


async def test_hidden_images_are_listed_only_when_asked_even_for_their_owner(
    site, new_image, project_headers
) -> None:
    alice = project_headers("p-alice")
    await new_image(alice, name="shown")
    await new_image(alice, name="hidden", os_hidden=True)
    assert await names(site, alice) == ["shown"]
    assert await names(site, alice, "?os_hidden=true") == ["hidden"]
    assert await names(site, alice, "?os_hidden=false") == ["shown"]


async def test_what_each_project_lists(site, admin_headers, new_image, project_headers) -> None:
    alice, bob = project_headers("p-alice"), project_headers("p-bob")
    await new_image(alice, name="a-private", visibility="private")
    await new_image(alice, name="a-shared")
    await new_image(alice, name="a-community", visibility="community")
    await new_image(bob, name="b-shared")
    await new_image(admin_headers, name="public", visibility="public")
    sort = "sort=name:asc"
    assert await names(site, alice, f"?{sort}") == [
        "a-community",
        "a-private",
        "a-shared",
        "public",
    ]
    # Another project's community images are listed only when asked for.
    assert await names(site, bob, f"?{sort}") == ["b-shared", "public"]
    assert await names(site, bob, f"?visibility=community&{sort}") == ["a-community"]
    assert await names(site, bob, f"?visibility=all&{sort}") == [
        "a-community",
        "b-shared",
        "public",
    ]
    assert await names(site, bob, f"?visibility=private&{sort}") == []
    assert await names(site, bob, f"?owner=p-alice&{sort}") == []
    assert await names(site, admin_headers, f"?owner=p-alice&{sort}") == [
        "a-community",
        "a-private",
        "a-shared",
    ]
    assert await names(site, admin_headers, f"?visibility=shared&{sort}") == [
        "a-shared",
        "b-shared",
    ]


async def test_a_reader_lists_its_projects_images(site, new_image, project_headers) -> None:
    await new_image(project_headers("p-alice"), name="ours", visibility="private")
    assert await names(site, project_headers("p-alice", "reader")) == ["ours"]
    # A role the image policy does not know reads nothing private.
    assert await names(site, project_headers("p-alice", "observer")) == []


async def test_the_list_document_has_glances_links(site, admin_headers, new_image) -> None:
    img = await new_image(name="x")
    doc = await page(site, admin_headers)
    assert doc["first"] == "/v2/images" and doc["schema"] == "/v2/schemas/images"
    (listed,) = doc["images"]
    assert listed["self"] == f"/v2/images/{img['id']}"
    assert listed["file"] == f"/v2/images/{img['id']}/file"
    assert listed == (await site.client.get(f"{IMAGES}/{img['id']}", headers=admin_headers)).json()
