"""Who sees and changes which image: visibility, members, readers, admin, sync locks."""

from __future__ import annotations

from image_testkit import patch, upload

from edgefed.store.image import ImageRepository
from edgefed.testkit.inprocess import InProcessSite


async def _ids(site: InProcessSite, headers, query: str = "") -> list[str]:
    r = await site.client.get(f"/image/v2/images{query}", headers=headers)
    assert r.status_code == 200, r.text
    return [i["id"] for i in r.json()["images"]]


async def test_visibility_rules(site, admin_headers, new_image, project_headers) -> None:
    alice, bob = project_headers("p-alice"), project_headers("p-bob")
    private = await new_image(headers=alice, visibility="private")
    shared = await new_image(headers=alice)
    community = await new_image(headers=alice, visibility="community")
    public = await new_image(visibility="public")  # admin only
    hidden = await new_image(visibility="public", os_hidden=True)

    bob_sees = await _ids(site, bob)
    assert public["id"] in bob_sees
    assert {private["id"], shared["id"], community["id"], hidden["id"]}.isdisjoint(bob_sees)
    assert await _ids(site, bob, "?visibility=community") == [community["id"]]
    assert hidden["id"] in await _ids(site, bob, "?os_hidden=true")
    for img in (private, shared):
        r = await site.client.get(f"/image/v2/images/{img['id']}", headers=bob)
        assert r.status_code == 404
    r = await site.client.get(f"/image/v2/images/{community['id']}", headers=bob)
    assert r.status_code == 200

    alice_sees = await _ids(site, alice)
    assert {private["id"], shared["id"], community["id"], public["id"]} <= set(alice_sees)
    admin_sees = await _ids(site, admin_headers)
    assert {private["id"], shared["id"], public["id"]} <= set(admin_sees)

    r = await site.client.post(
        "/image/v2/images", json={"name": "x", "visibility": "public"}, headers=alice
    )
    assert r.status_code == 403
    r = await patch(
        site, alice, shared["id"], [{"op": "replace", "path": "/visibility", "value": "public"}]
    )
    assert r.status_code == 403
    r = await patch(site, bob, public["id"], [{"op": "replace", "path": "/name", "value": "mine"}])
    assert r.status_code == 403
    r = await site.client.delete(f"/image/v2/images/{public['id']}", headers=bob)
    assert r.status_code == 403


async def test_reader_cannot_write(site, new_image, project_headers) -> None:
    member = project_headers("p-team")
    reader = project_headers("p-team", "reader")
    img = await new_image(headers=member)
    assert img["id"] in await _ids(site, reader)
    r = await site.client.post("/image/v2/images", json={"name": "r"}, headers=reader)
    assert r.status_code == 403
    r = await patch(site, reader, img["id"], [{"op": "replace", "path": "/name", "value": "r"}])
    assert r.status_code == 403
    assert (await upload(site, reader, img["id"], b"x")).status_code == 403
    assert (
        await site.client.delete(f"/image/v2/images/{img['id']}", headers=reader)
    ).status_code == 403
    assert (
        await site.client.put(f"/image/v2/images/{img['id']}/tags/t", headers=reader)
    ).status_code == 403


async def test_members_share_an_image(site, new_image, project_headers) -> None:
    alice, bob, carol = (
        project_headers("p-alice"),
        project_headers("p-bob"),
        project_headers("p-carol"),
    )
    img = await new_image(headers=alice)
    members = f"/image/v2/images/{img['id']}/members"
    r = await site.client.post(members, json={"member": "p-bob"}, headers=alice)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "pending"
    assert (
        await site.client.post(members, json={"member": "p-bob"}, headers=alice)
    ).status_code == 409
    assert (await site.client.post(members, json={}, headers=alice)).status_code == 400
    assert (await site.client.post(members, json={"member": "p-x"}, headers=bob)).status_code == 403

    # Pending: bob can read it directly but it is not in his list.
    assert (await site.client.get(f"/image/v2/images/{img['id']}", headers=bob)).status_code == 200
    assert img["id"] not in await _ids(site, bob)
    assert img["id"] in await _ids(site, bob, "?member_status=pending")
    assert (
        await site.client.get(f"/image/v2/images/{img['id']}", headers=carol)
    ).status_code == 404

    # Only bob may accept.
    r = await site.client.put(f"{members}/p-bob", json={"status": "accepted"}, headers=alice)
    assert r.status_code == 403
    r = await site.client.put(f"{members}/p-bob", json={"status": "maybe"}, headers=bob)
    assert r.status_code == 400
    r = await site.client.put(f"{members}/p-bob", json={"status": "accepted"}, headers=bob)
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    assert img["id"] in await _ids(site, bob)

    listed = (await site.client.get(members, headers=alice)).json()
    assert [m["member_id"] for m in listed["members"]] == ["p-bob"]
    assert listed["schema"] == "/v2/schemas/members"
    shown = await site.client.get(f"{members}/p-bob", headers=bob)
    assert shown.status_code == 200
    assert (await site.client.get(f"{members}/p-nobody", headers=alice)).status_code == 404

    assert (await site.client.delete(f"{members}/p-bob", headers=alice)).status_code == 204
    assert img["id"] not in await _ids(site, bob)
    assert (await site.client.get(f"/image/v2/images/{img['id']}", headers=bob)).status_code == 404

    private = await new_image(headers=alice, visibility="private")
    r = await site.client.post(
        f"/image/v2/images/{private['id']}/members", json={"member": "p-bob"}, headers=alice
    )
    assert r.status_code == 403
    assert "shared" in r.json()["message"]


async def test_filters_sort_and_paging(site, admin_headers, new_image) -> None:
    made = []
    for i, (fmt, size) in enumerate([("qcow2", 10), ("raw", 20), ("qcow2", 30), ("iso", 40)]):
        img = await new_image(
            name=f"n{i}", disk_format=fmt, tags=["even"] if i % 2 == 0 else [], flavor_hint=f"h{i}"
        )
        await upload(site, admin_headers, img["id"], b"x" * size)
        made.append(img["id"])

    async def ids(query: str) -> list[str]:
        return [i for i in await _ids(site, admin_headers, query) if i in made]

    assert await ids("?disk_format=qcow2&sort=name:asc") == [made[0], made[2]]
    assert await ids("?tag=even&sort_key=name&sort_dir=desc") == [made[2], made[0]]
    assert await ids("?size_min=20&size_max=30&sort=size:asc") == [made[1], made[2]]
    assert await ids(f"?id=in:{made[1]},{made[3]}&sort=name:asc") == [made[1], made[3]]
    assert await ids("?name=n3") == [made[3]]
    assert await ids("?flavor_hint=h1") == [made[1]]
    assert await ids("?status=queued") == []

    first = (
        await site.client.get(
            "/image/v2/images?limit=2&sort=name:asc&disk_format=in:qcow2,raw,iso",
            headers=admin_headers,
        )
    ).json()
    assert [i["name"] for i in first["images"]] == ["n0", "n1"]
    assert first["next"].startswith("/v2/images?")
    assert "marker=" in first["next"] and "sort=name" in first["next"]
    second = (await site.client.get("/image" + first["next"], headers=admin_headers)).json()
    assert [i["name"] for i in second["images"]] == ["n2", "n3"]
    assert "next" not in second

    for bad in (
        "?limit=x",
        "?limit=-1",
        "?sort_key=colour",
        "?sort_dir=up",
        "?marker=nope",
        "?size_min=big",
        "?visibility=secret",
        "?member_status=maybe",
        "?os_hidden=perhaps",
    ):
        r = await site.client.get(f"/image/v2/images{bad}", headers=admin_headers)
        assert r.status_code == 400, (bad, r.text)


async def test_synced_image_is_locked(site, admin_headers) -> None:
    repo = ImageRepository(site.app.state.ctx.store)
    rec = await repo.create(owner="p-x", name="from-paris", origin="Paris")
    r = await patch(site, admin_headers, rec.id, [{"op": "replace", "path": "/name", "value": "x"}])
    assert r.status_code == 409
    assert "Paris" in r.json()["message"]
    r = await site.client.delete(f"/image/v2/images/{rec.id}", headers=admin_headers)
    assert r.status_code == 409
    assert "Paris" in r.json()["message"]
