"""Image data: upload states, digests, limits, Content-MD5, Range downloads, import."""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from image_testkit import upload

from edgefed.store.image import ImageRepository
from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings


async def test_upload_download_with_digests(site: InProcessSite, admin_headers, new_image) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)

    async def chunks():
        for i in range(0, len(data), 65536):
            yield data[i : i + 65536]

    img = await new_image()
    r = await site.client.put(
        f"/image/v2/images/{img['id']}/file",
        content=chunks(),  # chunked transfer, no Content-Length
        headers={**admin_headers, "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 204, r.text
    shown = (await site.client.get(f"/image/v2/images/{img['id']}", headers=admin_headers)).json()
    assert shown["status"] == "active"
    assert shown["size"] == len(data)
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    assert shown["os_hash_algo"] == "sha512"
    assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
    got = await site.client.get(f"/image/v2/images/{img['id']}/file", headers=admin_headers)
    assert got.status_code == 200
    assert got.headers["content-md5"] == hashlib.md5(data).hexdigest()
    assert got.headers["content-length"] == str(len(data))
    assert got.content == data
    blob = site.settings.data_dir / "images" / hashlib.sha256(data).hexdigest()
    assert blob.read_bytes() == data
    again = await upload(site, admin_headers, img["id"], b"more")
    assert again.status_code == 409


async def test_no_data_is_204_and_wrong_type_is_415(site, admin_headers, new_image) -> None:
    img = await new_image()
    r = await site.client.get(f"/image/v2/images/{img['id']}/file", headers=admin_headers)
    assert r.status_code == 204
    r = await site.client.put(
        f"/image/v2/images/{img['id']}/file",
        content=b"x",
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert r.status_code == 415
    no_format = await new_image(disk_format=None, container_format=None)
    r = await upload(site, admin_headers, no_format["id"], b"x")
    assert r.status_code == 400
    assert "disk_format" in r.json()["message"]


async def test_content_md5_mismatch_is_400_and_image_stays_queued(
    site, admin_headers, new_image
) -> None:
    img = await new_image()
    r = await upload(site, admin_headers, img["id"], b"payload", **{"Content-MD5": "0" * 32})
    assert r.status_code == 400
    assert "Content-MD5" in r.json()["message"]
    shown = (await site.client.get(f"/image/v2/images/{img['id']}", headers=admin_headers)).json()
    assert shown["status"] == "queued"
    good = base64.b64encode(hashlib.md5(b"payload").digest()).decode()
    r = await upload(site, admin_headers, img["id"], b"payload", **{"Content-MD5": good})
    assert r.status_code == 204
    assert list((site.settings.data_dir / "images" / "tmp").iterdir()) == []


async def test_size_limit_is_413(tmp_path: Path) -> None:
    async with run_site(site_settings(tmp_path / "s", max_image_bytes=1000)) as s:
        headers = {"X-Auth-Token": await s.token()}
        body = {"name": "big", "disk_format": "raw", "container_format": "bare"}
        img = (await s.client.post("/image/v2/images", json=body, headers=headers)).json()
        r = await upload(s, headers, img["id"], b"z" * 1001)
        assert r.status_code == 413

        async def chunked():
            for _ in range(20):
                yield b"z" * 100

        r = await s.client.put(
            f"/image/v2/images/{img['id']}/file",
            content=chunked(),
            headers={**headers, "Content-Type": "application/octet-stream"},
        )
        assert r.status_code == 413
        shown = (await s.client.get(f"/image/v2/images/{img['id']}", headers=headers)).json()
        assert shown["status"] == "queued"
        assert (await upload(s, headers, img["id"], b"z" * 1000)).status_code == 204


async def test_range_requests(site, admin_headers, new_image) -> None:
    data = bytes(range(256)) * 40  # 10240 bytes
    img = await new_image()
    await upload(site, admin_headers, img["id"], data)
    url = f"/image/v2/images/{img['id']}/file"

    async def get(range_header: str):
        return await site.client.get(url, headers={**admin_headers, "Range": range_header})

    r = await get("bytes=100-199")
    assert r.status_code == 206
    assert r.content == data[100:200]
    assert r.headers["content-range"] == f"bytes 100-199/{len(data)}"
    r = await get("bytes=10000-")
    assert (r.status_code, r.content) == (206, data[10000:])
    r = await get("bytes=-40")
    assert (r.status_code, r.content) == (206, data[-40:])
    r = await get("bytes=10200-99999")
    assert (r.status_code, r.content) == (206, data[10200:])
    for bad in ("bytes=10240-", "bytes=500-100", "bytes=-0", "bytes=a-b", "bytes=0-1,5-6"):
        r = await get(bad)
        assert r.status_code == 416, bad
        assert r.headers["content-range"] == f"bytes */{len(data)}"
    r = await get("items=0-5")
    assert r.status_code == 200 and r.content == data


async def test_stage_and_glance_direct_import(site, admin_headers, new_image) -> None:
    img = await new_image()
    r = await site.client.post(
        f"/image/v2/images/{img['id']}/import",
        json={"method": {"name": "glance-direct"}},
        headers=admin_headers,
    )
    assert r.status_code == 409, "nothing staged yet"
    r = await site.client.put(
        f"/image/v2/images/{img['id']}/stage",
        content=b"staged data",
        headers={**admin_headers, "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 204
    shown = (await site.client.get(f"/image/v2/images/{img['id']}", headers=admin_headers)).json()
    assert shown["status"] == "uploading"
    r = await site.client.post(
        f"/image/v2/images/{img['id']}/import",
        json={"method": {"name": "web-download"}},
        headers=admin_headers,
    )
    assert r.status_code == 400
    r = await site.client.post(
        f"/image/v2/images/{img['id']}/import",
        json={"method": {"name": "glance-direct"}},
        headers=admin_headers,
    )
    assert r.status_code == 202
    got = await site.client.get(f"/image/v2/images/{img['id']}/file", headers=admin_headers)
    assert got.content == b"staged data"


async def test_restart_puts_interrupted_upload_back_to_queued(tmp_path: Path) -> None:
    settings = site_settings(tmp_path / "s")
    async with run_site(settings) as s:
        headers = {"X-Auth-Token": await s.token()}
        body = {"name": "x", "disk_format": "raw", "container_format": "bare"}
        img = (await s.client.post("/image/v2/images", json=body, headers=headers)).json()
        # What a crash mid-upload leaves behind: the row in saving and a partial file.
        await ImageRepository(s.app.state.ctx.store).begin_upload(img["id"])
        tmp = settings.data_dir / "images" / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        (tmp / f"{img['id']}.partial.part").write_bytes(b"half")
    async with run_site(settings) as s:
        headers = {"X-Auth-Token": await s.token()}
        shown = (await s.client.get(f"/image/v2/images/{img['id']}", headers=headers)).json()
        assert shown["status"] == "queued"
        assert list(tmp.iterdir()) == []
        assert (await upload(s, headers, img["id"], b"whole")).status_code == 204
