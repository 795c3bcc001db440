"""Image data in and out: which uploads are taken (once, into a queued image, by whom),
the headers they are checked by, the staged import, and byte ranges as
``parse_range`` reads them."""

from __future__ import annotations

import base64
import hashlib

import pytest
from image_testkit import upload

from edgefed.core.errors import RangeNotSatisfiable
from edgefed.services.image.data import parse_range
from edgefed.testkit.inprocess import InProcessSite

IMAGES = "/image/v2/images"
OCTETS = {"Content-Type": "application/octet-stream"}


def refused(r, status: int, message: str) -> None:
    assert r.status_code == status, r.text
    assert message in r.json()["message"], r.json()


async def status_of(site: InProcessSite, h: dict[str, str], image_id: str) -> str:
    r = await site.client.get(f"{IMAGES}/{image_id}", headers=h)
    assert r.status_code == 200, r.text
    return str(r.json()["status"])


# -- uploads ---------------------------------------------------------------------------------


async def test_data_goes_into_a_queued_image_once(site, new_image, project_headers) -> None:
    alice = project_headers("p-alice")
    img = await new_image(alice)
    assert (await upload(site, alice, img["id"], b"hello")).status_code == 204
    refused(
        await upload(site, alice, img["id"], b"again"),
        409,
        f"Image {img['id']} is active: data can only be uploaded to a queued image.",
    )
    r = await site.client.get(f"{IMAGES}/{img['id']}/file", headers=alice)
    assert r.content == b"hello"
    assert r.headers["content-md5"] == hashlib.md5(b"hello").hexdigest()  # noqa: S324


async def test_an_image_without_formats_takes_no_data(site, new_image, project_headers) -> None:
    alice = project_headers("p-alice")
    img = await new_image(alice, disk_format=None)
    refused(
        await upload(site, alice, img["id"], b"x"),
        400,
        "Properties disk_format, container_format must be set prior to saving data.",
    )
    assert await status_of(site, alice, img["id"]) == "queued"


async def test_only_a_member_of_the_owner_project_uploads(site, new_image, project_headers):
    alice = project_headers("p-alice")
    img = await new_image(alice)
    refused(
        await upload(site, project_headers("p-alice", "reader"), img["id"], b"x"),
        403,
        f"You are not authorized to upload data to image {img['id']} "
        "(the member role on the owner project is required).",
    )
    refused(
        await upload(site, project_headers("p-bob"), img["id"], b"x"),
        404,
        f"No image found with ID {img['id']}",
    )
    assert await status_of(site, alice, img["id"]) == "queued"


async def test_content_md5_is_taken_as_hex_or_as_base64(site, new_image, project_headers):
    alice = project_headers("p-alice")
    digest = hashlib.md5(b"data")  # noqa: S324
    as_base64 = base64.b64encode(digest.digest()).decode()
    for md5 in (digest.hexdigest().upper(), as_base64):
        img = await new_image(alice)
        r = await upload(site, alice, img["id"], b"data", **{"Content-MD5": md5})
        assert r.status_code == 204, (md5, r.text)
        assert await status_of(site, alice, img["id"]) == "active"


async def test_bad_transfer_headers_are_refused_and_the_image_stays_queued(
    site, new_image, project_headers
) -> None:
    alice = project_headers("p-alice")
    img = await new_image(alice)
    short = base64.b64encode(b"short").decode()
    cases = [
        ({"Content-MD5": "!!"}, "Invalid Content-MD5 header '!!'"),
        ({"Content-MD5": short}, f"Invalid Content-MD5 header '{short}': not an MD5 digest"),
        ({"Content-Length": "abc"}, "Invalid Content-Length header 'abc'"),
    ]
    for headers, message in cases:
        r = await site.client.put(
            f"{IMAGES}/{img['id']}/file", content=b"data", headers={**alice, **OCTETS, **headers}
        )
        refused(r, 400, message)
    r = await site.client.put(
        f"{IMAGES}/{img['id']}/file",
        content=b"data",
        headers={**alice, "Content-Type": "text/plain"},
    )
    refused(r, 415, "Unsupported Content-Type 'text/plain' for image data")
    assert await status_of(site, alice, img["id"]) == "queued"
    assert (await site.client.get(f"{IMAGES}/{img['id']}/file", headers=alice)).status_code == 204


# -- the staged import ---------------------------------------------------------------------------


async def test_glance_direct_stages_then_imports(site, new_image, project_headers) -> None:
    alice = project_headers("p-alice")
    img = await new_image(alice)
    r = await site.client.put(
        f"{IMAGES}/{img['id']}/stage", content=b"staged", headers={**alice, **OCTETS}
    )
    assert r.status_code == 204, r.text
    shown = (await site.client.get(f"{IMAGES}/{img['id']}", headers=alice)).json()
    assert (shown["status"], shown["size"]) == ("uploading", 6)
    # Staged data is not served, and the image takes no other upload meanwhile.
    assert (await site.client.get(f"{IMAGES}/{img['id']}/file", headers=alice)).status_code == 204
    refused(
        await upload(site, alice, img["id"], b"x"),
        409,
        f"Image {img['id']} is uploading: data can only be uploaded to a queued image.",
    )
    r = await site.client.post(
        f"{IMAGES}/{img['id']}/import", json={"method": {"name": "glance-direct"}}, headers=alice
    )
    assert r.status_code == 202, r.text
    assert await status_of(site, alice, img["id"]) == "active"
    assert (await site.client.get(f"{IMAGES}/{img['id']}/file", headers=alice)).content == b"staged"


async def test_an_import_needs_staged_data_and_a_method_this_site_has(
    site, new_image, project_headers
) -> None:
    alice = project_headers("p-alice")
    img = await new_image(alice)
    refused(
        await site.client.post(
            f"{IMAGES}/{img['id']}/import",
            json={"method": {"name": "glance-direct"}},
            headers=alice,
        ),
        409,
        f"Image {img['id']} needs to be staged before 'glance-direct' can import it.",
    )
    for body in ({"method": {"name": "web-download", "uri": "http://x"}}, {"method": "x"}, {}):
        r = await site.client.post(f"{IMAGES}/{img['id']}/import", json=body, headers=alice)
        refused(r, 400, "is not supported here; supported: glance-direct (field 'method.name')")
    assert await status_of(site, alice, img["id"]) == "queued"
    r = await site.client.post(
        f"{IMAGES}/{img['id']}/import",
        json={"method": {"name": "glance-direct"}},
        headers=project_headers("p-alice", "reader"),
    )
    assert r.status_code == 403


# -- ranges ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-0", (0, 0)),
        ("bytes=2-5", (2, 5)),
        ("bytes=2-", (2, 9)),
        ("bytes=5-1000", (5, 9)),
        ("bytes=-3", (7, 9)),
        ("bytes=-100", (0, 9)),
        ("BYTES = 1-2", (1, 2)),
        ("items=0-1", None),
    ],
)
def test_a_range_selects_inclusive_offsets_clamped_to_the_size(header, expected) -> None:
    assert parse_range(header, 10) == expected


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("bytes=0-1,4-5", "multiple ranges are not supported"),
        ("bytes=5", "malformed range"),
        ("bytes=a-b", "malformed range"),
        ("bytes=1-x", "malformed range"),
        ("bytes=-", "malformed range"),
        ("bytes=5-2", "ends before it starts"),
        ("bytes=10-", "starts past the end (10 bytes)"),
        ("bytes=-0", "selects no bytes"),
    ],
)
def test_an_unsatisfiable_range_is_416_with_the_size(header, reason) -> None:
    with pytest.raises(RangeNotSatisfiable) as refused_range:
        parse_range(header, 10)
    assert reason in refused_range.value.message
    assert refused_range.value.headers == {"Content-Range": "bytes */10"}


def test_an_empty_image_satisfies_no_suffix_range() -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=-1", 0)


async def test_a_download_of_a_range_says_which_bytes_it_carries(site, new_image, project_headers):
    alice = project_headers("p-alice")
    img = await new_image(alice)
    await upload(site, alice, img["id"], b"0123456789")
    r = await site.client.get(f"{IMAGES}/{img['id']}/file", headers={**alice, "Range": "bytes=-2"})
    assert (r.status_code, r.content) == (206, b"89")
    assert r.headers["content-range"] == "bytes 8-9/10" and r.headers["content-length"] == "2"
    r = await site.client.get(f"{IMAGES}/{img['id']}/file", headers={**alice, "Range": "items=1-2"})
    assert (r.status_code, r.content) == (200, b"0123456789")
    assert r.headers["accept-ranges"] == "bytes"
    r = await site.client.get(f"{IMAGES}/{img['id']}/file", headers={**alice, "Range": "bytes=20-"})
    assert r.status_code == 416 and r.headers["content-range"] == "bytes */10"
