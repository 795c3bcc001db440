"""Images through the Glance v2 API: create, show, list, update, delete, tags, actions."""

from __future__ import annotations

import uuid

from image_testkit import PATCH, patch, upload

from edgefed.testkit.inprocess import InProcessSite


async def test_versions_document_lets_clients_discover_v2(site: InProcessSite) -> None:
    root = await site.client.get("/image")
    assert root.status_code == 300
    versions = root.json()["versions"]
    assert versions[0]["status"] == "CURRENT"
    assert versions[0]["links"][0]["href"] == "http://berlin.test/image/v2/"
    assert (await site.client.get("/image/versions")).json() == root.json()


async def test_create_show_with_properties_and_id(site, admin_headers, new_image) -> None:
    image_id = str(uuid.uuid4())
    img = await new_image(id=image_id, tags=["a", "b", "a"], min_ram=512, hw_disk_bus="scsi")
    assert img["id"] == image_id
    assert img["status"] == "queued"
    assert img["visibility"] == "shared"
    assert img["tags"] == ["a", "b"]
    assert img["hw_disk_bus"] == "scsi"
    assert img["self"] == f"/v2/images/{image_id}"
    shown = (await site.client.get(f"/image/v2/images/{image_id}", headers=admin_headers)).json()
    assert shown == img
    again = await site.client.post("/image/v2/images", json={"id": image_id}, headers=admin_headers)
    assert again.status_code == 409


async def test_bad_create_bodies_name_the_problem(site: InProcessSite, admin_headers) -> None:
    cases = [
        (b"{not json", 400, "Malformed JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"disk_format": "floppy"}', 400, "disk_format"),
        (b'{"container_format": "zip"}', 400, "container_format"),
        (b'{"min_ram": "lots"}', 400, "min_ram"),
        (b'{"min_disk": -1}', 400, "min_disk"),
        (b'{"protected": "yes"}', 400, "protected"),
        (b'{"visibility": "secret"}', 400, "visibility"),
        (b'{"tags": "x"}', 400, "tags"),
        (b'{"id": "not-a-uuid"}', 400, "id"),
        (b'{"custom": 5}', 400, "custom"),
        (b'{"status": "active"}', 403, "status"),
        (b'{"checksum": "abc"}', 403, "checksum"),
    ]
    for body, status, word in cases:
        r = await site.client.post(
            "/image/v2/images",
            content=body,
            headers={**admin_headers, "Content-Type": "application/json"},
        )
        assert r.status_code == status, (body, r.text)
        fault = r.json()
        assert word in fault["message"], (body, fault)
        assert fault["code"].startswith(str(status))


async def test_unknown_image_is_404_in_glance_shape(site, admin_headers) -> None:
    missing = str(uuid.uuid4())
    for method, path in [
        ("GET", f"/image/v2/images/{missing}"),
        ("DELETE", f"/image/v2/images/{missing}"),
        ("GET", f"/image/v2/images/{missing}/file"),
        ("PUT", f"/image/v2/images/{missing}/tags/x"),
        ("GET", f"/image/v2/images/{missing}/members"),
    ]:
        r = await site.client.request(method, path, headers=admin_headers)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["title"] == "Not Found"


async def test_patch_add_replace_remove(site, admin_headers, new_image) -> None:
    img = await new_image(owner_note="x")
    r = await patch(
        site,
        admin_headers,
        img["id"],
        [
            {"op": "replace", "path": "/name", "value": "renamed"},
            {"op": "add", "path": "/min_ram", "value": 1024},
            {"op": "add", "path": "/tags", "value": ["t1", "t2"]},
            {"op": "add", "path": "/tags/-", "value": "t3"},
            {"op": "add", "path": "/os~1distro", "value": "debian"},
            {"op": "remove", "path": "/owner_note"},
            {"op": "replace", "path": "/visibility", "value": "private"},
        ],
    )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["name"] == "renamed"
    assert doc["min_ram"] == 1024
    assert doc["tags"] == ["t1", "t2", "t3"]
    assert doc["os/distro"] == "debian"
    assert "owner_note" not in doc
    assert doc["visibility"] == "private"


async def test_bad_patches_are_refused(site, admin_headers, new_image) -> None:
    img = await new_image()
    cases = [
        ([{"op": "replace", "path": "/id", "value": "x"}], 403, "read-only"),
        ([{"op": "replace", "path": "/status", "value": "active"}], 403, "read-only"),
        ([{"op": "replace", "path": "/checksum", "value": "x"}], 403, "read-only"),
        ([{"op": "move", "path": "/name", "value": "x"}], 400, "move"),
        ([{"op": "add", "path": "name", "value": "x"}], 400, "pointer"),
        ([{"op": "add", "path": "/name"}], 400, "value"),
        ([{"op": "replace", "path": "/nope", "value": "x"}], 409, "nope"),
        ([{"op": "remove", "path": "/nope"}], 409, "nope"),
        ([{"op": "remove", "path": "/name"}], 403, "name"),
        ([{"op": "replace", "path": "/disk_format", "value": "floppy"}], 400, "disk_format"),
        ([{"op": "replace", "path": "/min_disk", "value": "big"}], 400, "min_disk"),
        ({"op": "add"}, 400, "list"),
    ]
    for ops, status, word in cases:
        r = await patch(site, admin_headers, img["id"], ops)
        assert r.status_code == status, (ops, r.text)
        assert word in r.json()["message"], (ops, r.json())
    wrong_type = await site.client.patch(
        f"/image/v2/images/{img['id']}",
        json=[{"op": "replace", "path": "/name", "value": "x"}],
        headers=admin_headers,
    )
    assert wrong_type.status_code == 415
    assert PATCH in wrong_type.json()["message"]
    bad_json = await site.client.patch(
        f"/image/v2/images/{img['id']}",
        content=b"[{",
        headers={**admin_headers, "Content-Type": PATCH},
    )
    assert bad_json.status_code == 400


async def test_delete_protected_and_blob_sharing(site, admin_headers, new_image) -> None:
    a = await new_image(protected=True)
    b = await new_image()
    data = b"same bytes" * 100
    assert (await upload(site, admin_headers, a["id"], data)).status_code == 204
    assert (await upload(site, admin_headers, b["id"], data)).status_code == 204
    blobs = list((site.settings.data_dir / "images").glob("[0-9a-f]" * 1 + "*"))
    assert len([p for p in blobs if p.is_file()]) == 1, "identical data is stored once"
    r = await site.client.delete(f"/image/v2/images/{a['id']}", headers=admin_headers)
    assert r.status_code == 403
    assert "protected" in r.json()["message"]
    await patch(
        site, admin_headers, a["id"], [{"op": "replace", "path": "/protected", "value": False}]
    )
    assert (
        await site.client.delete(f"/image/v2/images/{a['id']}", headers=admin_headers)
    ).status_code == 204
    assert (
        await site.client.get(f"/image/v2/images/{a['id']}", headers=admin_headers)
    ).status_code == 404
    r = await site.client.get(f"/image/v2/images/{b['id']}/file", headers=admin_headers)
    assert r.content == data
    assert (
        await site.client.delete(f"/image/v2/images/{b['id']}", headers=admin_headers)
    ).status_code == 204
    assert not [p for p in (site.settings.data_dir / "images").iterdir() if p.is_file()]


async def test_tags_endpoints(site, admin_headers, new_image) -> None:
    img = await new_image()
    base = f"/image/v2/images/{img['id']}/tags"
    assert (await site.client.put(f"{base}/gold", headers=admin_headers)).status_code == 204
    assert (await site.client.put(f"{base}/gold", headers=admin_headers)).status_code == 204
    shown = (await site.client.get(f"/image/v2/images/{img['id']}", headers=admin_headers)).json()
    assert shown["tags"] == ["gold"]
    assert (await site.client.delete(f"{base}/gold", headers=admin_headers)).status_code == 204
    assert (await site.client.delete(f"{base}/gold", headers=admin_headers)).status_code == 404


async def test_deactivate_blocks_download_for_non_admin(
    site, admin_headers, new_image, project_headers
) -> None:
    owner = project_headers("p-owner")
    img = await new_image(headers=owner)
    await upload(site, owner, img["id"], b"data")
    act = f"/image/v2/images/{img['id']}/actions"
    assert (await site.client.post(f"{act}/deactivate", headers=owner)).status_code == 204
    shown = (await site.client.get(f"/image/v2/images/{img['id']}", headers=owner)).json()
    assert shown["status"] == "deactivated"
    assert (
        await site.client.get(f"/image/v2/images/{img['id']}/file", headers=owner)
    ).status_code == 403
    assert (
        await site.client.get(f"/image/v2/images/{img['id']}/file", headers=admin_headers)
    ).content == b"data"
    assert (await site.client.post(f"{act}/reactivate", headers=owner)).status_code == 204
    assert (
        await site.client.get(f"/image/v2/images/{img['id']}/file", headers=owner)
    ).content == b"data"
    queued = await new_image(headers=owner)
    r = await site.client.post(f"/image/v2/images/{queued['id']}/actions/deactivate", headers=owner)
    assert r.status_code == 403


async def test_schemas_and_info(site, admin_headers) -> None:
    for name in ("image", "images", "member", "members"):
        r = await site.client.get(f"/image/v2/schemas/{name}", headers=admin_headers)
        assert r.status_code == 200
        assert r.json()["name"] == name
    image_schema = (await site.client.get("/image/v2/schemas/image", headers=admin_headers)).json()
    assert "qcow2" in image_schema["properties"]["disk_format"]["enum"]
    info = (await site.client.get("/image/v2/info/import", headers=admin_headers)).json()
    assert info["import-methods"]["value"] == ["glance-direct"]
    assert (await site.client.get("/image/v2/images")).status_code == 401
