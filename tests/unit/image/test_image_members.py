"""Image members (Glance v2 ``/images/{id}/members``): the owner shares, each member
answers for itself, and what each party sees of the image and of the memberships."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from image_testkit import patch

from edgefed.store.image import ImageRepository
from edgefed.testkit.inprocess import InProcessSite

IMAGES = "/image/v2/images"


async def add(site: InProcessSite, h: dict[str, str], image_id: str, member: Any) -> httpx.Response:
    return await site.client.post(
        f"{IMAGES}/{image_id}/members", json={"member": member}, headers=h
    )


async def answer(
    site: InProcessSite, h: dict[str, str], image_id: str, member: str, status: Any
) -> httpx.Response:
    return await site.client.put(
        f"{IMAGES}/{image_id}/members/{member}", json={"status": status}, headers=h
    )


async def members(site: InProcessSite, h: dict[str, str], image_id: str) -> dict[str, str]:
    r = await site.client.get(f"{IMAGES}/{image_id}/members", headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["schema"] == "/v2/schemas/members"
    return {m["member_id"]: m["status"] for m in r.json()["members"]}


async def listed(site: InProcessSite, h: dict[str, str], query: str = "") -> set[str]:
    r = await site.client.get(f"{IMAGES}{query}", headers=h)
    assert r.status_code == 200, r.text
    return {i["id"] for i in r.json()["images"]}


def glance_fault(r: httpx.Response, status: int, message: str) -> None:
    assert r.status_code == status, r.text
    assert message in r.json()["message"], r.json()


async def test_a_new_member_is_pending_and_answered_as_glance_does(
    site, new_image, project_headers
) -> None:
    alice = project_headers("p-alice")
    img = await new_image(alice)
    r = await add(site, alice, img["id"], "p-bob")
    # Glance answers a new member with 200, not 201.
    assert r.status_code == 200, r.text
    member = r.json()
    assert (member["image_id"], member["member_id"], member["status"]) == (
        img["id"],
        "p-bob",
        "pending",
    )
    assert member["schema"] == "/v2/schemas/member"
    assert member["created_at"].endswith("Z") and member["created_at"] == member["updated_at"]
    r = await site.client.get(f"{IMAGES}/{img['id']}/members/p-bob", headers=alice)
    assert r.status_code == 200 and r.json() == member


async def test_a_member_sees_a_shared_image_once_it_accepts(
    site, new_image, project_headers
) -> None:
    alice, bob = project_headers("p-alice"), project_headers("p-bob")
    img = await new_image(alice, name="golden")
    await add(site, alice, img["id"], "p-bob")
    # Pending: shown by id and under member_status=pending, not in the default list.
    assert (await site.client.get(f"{IMAGES}/{img['id']}", headers=bob)).status_code == 200
    assert img["id"] not in await listed(site, bob)
    assert img["id"] in await listed(site, bob, "?member_status=pending")
    assert img["id"] in await listed(site, bob, "?member_status=all")
    r = await answer(site, bob, img["id"], "p-bob", "accepted")
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    assert img["id"] in await listed(site, bob)
    assert img["id"] not in await listed(site, bob, "?member_status=pending")
    # Rejected: gone from the list again, still readable by id (the member may change
    # its mind).
    assert (await answer(site, bob, img["id"], "p-bob", "rejected")).status_code == 200
    assert img["id"] not in await listed(site, bob)
    assert img["id"] in await listed(site, bob, "?member_status=rejected")
    assert (await site.client.get(f"{IMAGES}/{img['id']}", headers=bob)).status_code == 200
    assert (await answer(site, bob, img["id"], "p-bob", "accepted")).status_code == 200
    assert img["id"] in await listed(site, bob)


async def test_the_owner_sees_every_member_and_a_member_only_itself(
    site, new_image, project_headers
) -> None:
    alice, bob, carol = (project_headers(p) for p in ("p-alice", "p-bob", "p-carol"))
    img = await new_image(alice)
    for who in ("p-bob", "p-carol"):
        assert (await add(site, alice, img["id"], who)).status_code == 200
    await answer(site, carol, img["id"], "p-carol", "accepted")
    assert await members(site, alice, img["id"]) == {"p-bob": "pending", "p-carol": "accepted"}
    assert await members(site, bob, img["id"]) == {"p-bob": "pending"}
    assert await members(site, carol, img["id"]) == {"p-carol": "accepted"}
    glance_fault(
        await site.client.get(f"{IMAGES}/{img['id']}/members/p-carol", headers=bob),
        404,
        f"Member p-carol not found for image {img['id']}.",
    )


async def test_strangers_do_not_learn_the_image_or_its_members_exist(
    site, new_image, project_headers
) -> None:
    alice, eve = project_headers("p-alice"), project_headers("p-eve")
    img = await new_image(alice)
    await add(site, alice, img["id"], "p-bob")
    for r in (
        await site.client.get(f"{IMAGES}/{img['id']}/members", headers=eve),
        await site.client.get(f"{IMAGES}/{img['id']}/members/p-bob", headers=eve),
        await add(site, eve, img["id"], "p-eve"),
        await answer(site, eve, img["id"], "p-bob", "accepted"),
        await site.client.delete(f"{IMAGES}/{img['id']}/members/p-bob", headers=eve),
    ):
        glance_fault(r, 404, f"No image found with ID {img['id']}")
    assert await members(site, alice, img["id"]) == {"p-bob": "pending"}


async def test_only_the_member_answers_and_only_the_owner_removes(
    site, new_image, project_headers
) -> None:
    alice, bob, carol = (project_headers(p) for p in ("p-alice", "p-bob", "p-carol"))
    img = await new_image(alice)
    await add(site, alice, img["id"], "p-bob")
    await add(site, alice, img["id"], "p-carol")
    message = "Only the member itself may accept or reject a shared image."
    glance_fault(await answer(site, alice, img["id"], "p-bob", "accepted"), 403, message)
    # Another member does not even see bob's membership.
    glance_fault(
        await answer(site, carol, img["id"], "p-bob", "accepted"),
        404,
        "Member p-bob not found",
    )
    glance_fault(
        await site.client.delete(f"{IMAGES}/{img['id']}/members/p-bob", headers=bob),
        403,
        "Only the image owner may remove a member.",
    )
    assert await members(site, alice, img["id"]) == {"p-bob": "pending", "p-carol": "pending"}
    r = await site.client.delete(f"{IMAGES}/{img['id']}/members/p-bob", headers=alice)
    assert r.status_code == 204
    assert await members(site, alice, img["id"]) == {"p-carol": "pending"}
    glance_fault(await site.client.get(f"{IMAGES}/{img['id']}", headers=bob), 404, "No image found")


async def test_an_admin_answers_for_a_member_and_removes_one(
    site, admin_headers, new_image, project_headers
) -> None:
    alice = project_headers("p-alice")
    img = await new_image(alice)
    await add(site, alice, img["id"], "p-bob")
    r = await answer(site, admin_headers, img["id"], "p-bob", "accepted")
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    assert (
        await site.client.delete(f"{IMAGES}/{img['id']}/members/p-bob", headers=admin_headers)
    ).status_code == 204


async def test_member_requests_are_checked_before_anything_changes(
    site, new_image, project_headers
) -> None:
    alice, bob = project_headers("p-alice"), project_headers("p-bob")
    img = await new_image(alice)
    await add(site, alice, img["id"], "p-bob")
    glance_fault(
        await add(site, alice, img["id"], "p-bob"),
        409,
        f"Member p-bob already exists for image {img['id']}.",
    )
    for bad in (None, "", 7, "p" * 256):
        glance_fault(
            await add(site, alice, img["id"], bad),
            400,
            "'member' is required: the ID of the project to share with",
        )
    for status in ("yes", None, "ACCEPTED"):
        glance_fault(
            await answer(site, bob, img["id"], "p-bob", status),
            400,
            f"Invalid status {status!r}: must be one of pending, accepted, rejected",
        )
    r = await site.client.put(
        f"{IMAGES}/{img['id']}/members/p-bob",
        json={"status": "accepted", "member_id": "p-eve"},
        headers=bob,
    )
    glance_fault(r, 400, "Unexpected member attributes: ['member_id']")
    r = await site.client.post(f"{IMAGES}/{img['id']}/members", content=b"{x", headers=alice)
    glance_fault(r, 400, "Malformed JSON in request body")
    assert await members(site, alice, img["id"]) == {"p-bob": "pending"}
    glance_fault(
        await site.client.delete(f"{IMAGES}/{img['id']}/members/p-nobody", headers=alice),
        404,
        f"Member p-nobody not found for image {img['id']}.",
    )


async def test_only_shared_images_take_members(site, new_image, project_headers) -> None:
    alice = project_headers("p-alice")
    for visibility in ("private", "community"):
        img = await new_image(alice, visibility=visibility)
        glance_fault(
            await add(site, alice, img["id"], "p-bob"),
            403,
            f"Only shared images have members; image {img['id']} is {visibility}.",
        )
        assert await members(site, alice, img["id"]) == {}


async def test_making_an_image_private_hides_it_from_members_until_shared_again(
    site, new_image, project_headers
) -> None:
    alice, bob = project_headers("p-alice"), project_headers("p-bob")
    img = await new_image(alice)
    await add(site, alice, img["id"], "p-bob")
    await answer(site, bob, img["id"], "p-bob", "accepted")
    r = await patch(
        site, alice, img["id"], [{"op": "replace", "path": "/visibility", "value": "private"}]
    )
    assert r.status_code == 200, r.text
    assert img["id"] not in await listed(site, bob)
    glance_fault(await site.client.get(f"{IMAGES}/{img['id']}", headers=bob), 404, "No image found")
    # The membership is kept, as in Glance: sharing again restores it.
    assert await members(site, alice, img["id"]) == {"p-bob": "accepted"}
    await patch(
        site, alice, img["id"], [{"op": "replace", "path": "/visibility", "value": "shared"}]
    )
    assert img["id"] in await listed(site, bob)


async def test_a_reader_of_the_owner_project_shares_nothing(
    site, new_image, project_headers
) -> None:
    alice = project_headers("p-alice")
    reader = project_headers("p-alice", "reader")
    img = await new_image(alice)
    r = await add(site, reader, img["id"], "p-bob")
    assert r.status_code == 403, r.text
    # A reader of the owner project still reads the members.
    assert await members(site, reader, img["id"]) == {}


async def test_a_synced_image_is_shared_at_its_source_only(site, admin_headers) -> None:
    repo = ImageRepository(site.app.state.ctx.store)
    rec = await repo.create(owner="p-alice", name="from-paris", origin="Paris")
    r = await add(site, admin_headers, rec.id, "p-bob")
    assert r.status_code == 409, r.text
    assert "Paris" in r.json()["message"]
    assert await members(site, admin_headers, rec.id) == {}


async def test_racing_adds_of_one_member_make_it_once(site, new_image, project_headers) -> None:
    alice = project_headers("p-alice")
    img = await new_image(alice)
    answers = await asyncio.gather(*(add(site, alice, img["id"], "p-bob") for _ in range(4)))
    assert sorted(r.status_code for r in answers) == [200, 409, 409, 409]
    assert await members(site, alice, img["id"]) == {"p-bob": "pending"}
