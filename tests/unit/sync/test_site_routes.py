"""The sync routes other sites call, called by the test as Denver, a fleet member whose
key Berlin pinned: every route wants Denver's signature first, then its role (a push
only from a registered source, a pull or a blob only from an accepted receiver, the
progress report only for a source), and answers a malformed body with a 400 that says
what a body is; "missing" and "not marked for you" get the same 404."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from sync_support import engine_of

from edgefed.core.ed25519 import Ed25519PrivateKey
from edgefed.core.fleet import SiteEntry
from edgefed.core.sitesig import sign_request
from edgefed.core.tokens import public_key_b64
from edgefed.store.image import ImageRepository
from edgefed.sync.progress import DEPTH_HEADER
from edgefed.sync.site_routes import MAX_PUSH_ITEMS
from edgefed.testkit.inprocess import InProcessSite

SYNC = "/edge/v1/sync"
DENVER = Ed25519PrivateKey.generate()


@pytest.fixture
def berlin_with_denver(berlin: tuple[InProcessSite, Any]) -> InProcessSite:
    """Berlin (flavors f0, f1, f2), with Denver an active member of its fleet (Denver's
    key pinned)."""
    site = berlin[0]
    ctx = site.app.state.ctx
    ctx.fleet.apply(
        [SiteEntry(name="Denver", endpoint="http://denver.test",
                   public_key=public_key_b64(DENVER.public_key()))]
    )  # fmt: skip
    return site


async def as_denver(
    site: InProcessSite,
    method: str,
    path: str,
    body: Any = None,
    *,
    key: Ed25519PrivateKey = DENVER,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """A request signed as Denver with ``key`` (Denver's own unless a thief's)."""
    content = raw if raw is not None else (b"" if body is None else orjson.dumps(body))
    now = site.app.state.ctx.clock()
    signed = sign_request(key, site="Denver", target="Berlin", method=method,
                          path=SYNC + path, body=content, now=now)  # fmt: skip
    return await site.client.request(
        method, SYNC + path, content=content, headers={**signed, **(headers or {})}
    )


async def serve_denver(site: InProcessSite) -> None:
    """Denver an accepted receiver of Berlin: approved by Berlin's operator, and asked."""
    engine = engine_of(site)
    await engine.accept_receiver("Denver")
    assert (await engine.request_receiver("Denver"))[0] == "accepted"


def message(r: httpx.Response) -> str:
    return str(r.json()["error"]["message"])


ROUTES = [
    ("POST", "/receivers"),
    ("DELETE", "/receivers"),
    ("POST", "/push"),
    ("POST", "/pull"),
    ("GET", "/blobs/" + "a" * 64),
    ("GET", "/progress/report"),
]


async def test_every_route_wants_a_members_signature(berlin_with_denver: InProcessSite) -> None:
    site = berlin_with_denver
    thief = Ed25519PrivateKey.generate()
    for method, path in ROUTES:
        r = await site.client.request(method, SYNC + path, headers={"X-Edgefed-Site": "Denver"})
        assert r.status_code == 401, (path, r.text)
        assert message(r) == "the site request is not signed"
        r = await as_denver(site, method, path, key=thief)
        assert r.status_code == 401, (path, r.text)


async def test_a_site_outside_the_fleet_is_refused_by_name(site: InProcessSite) -> None:
    r = await as_denver(site, "POST", "/receivers")
    assert r.status_code == 401
    assert message(r) == "site 'Denver' is not an active member of this fleet"


async def test_a_receiver_waits_for_the_operator_then_is_served_and_leaves(
    berlin_with_denver: InProcessSite,
) -> None:
    site = berlin_with_denver
    r = await as_denver(site, "POST", "/receivers")
    assert r.status_code == 202, r.text
    assert r.json()["registration"] == {
        "source": "Berlin", "receiver": "Denver", "state": "pending", "queued": 0
    }  # fmt: skip

    await engine_of(site).accept_receiver("Denver")
    r = await as_denver(site, "POST", "/receivers")
    assert r.status_code == 201, r.text
    assert r.json()["registration"]["state"] == "accepted"

    assert (await as_denver(site, "DELETE", "/receivers")).status_code == 204
    r = await as_denver(site, "DELETE", "/receivers")
    assert r.status_code == 404
    assert message(r) == "site Denver is not a sync receiver of Berlin"


async def test_only_a_registered_source_may_push(berlin_with_denver: InProcessSite) -> None:
    site = berlin_with_denver
    r = await as_denver(site, "POST", "/push", {"items": []})
    assert r.status_code == 403
    assert message(r) == "site Denver is not a sync source of Berlin (register first)"

    await engine_of(site).add_source("Denver")
    r = await as_denver(site, "POST", "/push", {"items": []})
    assert r.status_code == 200, r.text
    assert r.json() == {"results": []}


async def test_a_push_body_that_is_no_list_of_items_is_a_400(
    berlin_with_denver: InProcessSite,
) -> None:
    site = berlin_with_denver
    await engine_of(site).add_source("Denver")
    for body in (b"{}", b'{"items": 7}', b'{"items": [1]}', b'{"items": [{}, "x"]}', b"[]",
                 b"not json"):  # fmt: skip
        r = await as_denver(site, "POST", "/push", raw=body)
        assert r.status_code == 400, (body, r.text)


async def test_a_push_of_too_many_items_is_refused_whole(
    berlin_with_denver: InProcessSite,
) -> None:
    site = berlin_with_denver
    await engine_of(site).add_source("Denver")
    item = {"kind": "flavor", "key": "f", "version": 1, "op": "delete"}
    r = await as_denver(site, "POST", "/push", {"items": [item] * (MAX_PUSH_ITEMS + 1)})
    assert r.status_code == 400
    assert message(r) == f"at most {MAX_PUSH_ITEMS} items per push"


async def test_a_push_answers_with_the_worst_refusal_among_its_items(
    berlin_with_denver: InProcessSite,
) -> None:
    site = berlin_with_denver
    await engine_of(site).add_source("Denver")
    good = {"id": "f9", "name": "f9", "vcpus": 1, "ram": 64, "disk": 0,
            "created_at": "2026-01-01T00:00:00+00:00"}  # fmt: skip
    items = [
        {"kind": "flavor", "key": "f9", "version": 1, "op": "upsert", "row": good},
        {"kind": "??", "key": "k", "version": 1, "op": "upsert", "row": {}},
    ]
    r = await as_denver(site, "POST", "/push", {"items": items})
    assert r.status_code == 400, r.text
    statuses = [(x["key"], x["status"]) for x in r.json()["results"]]
    assert statuses == [("f9", "applied"), ("k", "rejected")]
    # The good item is applied all the same: Berlin serves the flavor.
    flavor = await site.client.get(
        "/compute/v2.1/flavors/f9", headers={"X-Auth-Token": await site.token()}
    )
    assert flavor.status_code == 200, flavor.text


async def test_only_an_accepted_receiver_may_pull(berlin_with_denver: InProcessSite) -> None:
    site = berlin_with_denver
    r = await as_denver(site, "POST", "/pull", {"kind": "flavor", "id": "f0"})
    assert r.status_code == 403
    assert message(r) == "site Denver is not an accepted sync receiver of Berlin"


PULL_BODY = 'a pull body is {"kind": ..., "id": ...}'


async def test_a_malformed_pull_says_what_a_pull_is(berlin_with_denver: InProcessSite) -> None:
    site = berlin_with_denver
    await serve_denver(site)
    for body, words in [
        ({"id": "f0"}, PULL_BODY),
        ({"kind": "flavor"}, PULL_BODY),
        ({"kind": 7, "id": "f0"}, PULL_BODY),
        ({"kind": "flavor", "id": ""}, PULL_BODY),
        ({"kind": "flavor", "id": "x" * 513}, PULL_BODY),
        ({"kind": "volume", "id": "v1"}, "unknown resource kind 'volume'"),
    ]:
        r = await as_denver(site, "POST", "/pull", body)
        assert r.status_code == 400, (body, r.text)
        assert message(r) == words


async def test_a_pull_is_served_for_what_is_marked_and_404_otherwise(
    berlin_with_denver: InProcessSite,
) -> None:
    site = berlin_with_denver
    engine = engine_of(site)
    await serve_denver(site)
    r = await as_denver(site, "POST", "/pull", {"kind": "flavor", "id": "f0"})
    assert r.status_code == 404
    assert message(r) == "no flavor f0 for Denver at Berlin"

    await engine.mark(kind="flavor", key="*", to="Denver")
    r = await as_denver(site, "POST", "/pull", {"kind": "flavor", "id": "f0"})
    assert r.status_code == 202, r.text
    assert r.json()["queued"] >= 1
    r = await as_denver(site, "POST", "/pull", {"kind": "flavor", "id": "no-such-flavor"})
    assert r.status_code == 404


async def test_a_blob_is_served_only_to_an_accepted_receiver_it_is_marked_for(
    berlin_with_denver: InProcessSite,
) -> None:
    site = berlin_with_denver
    engine = engine_of(site)
    headers = {"X-Auth-Token": await site.token()}
    r = await site.client.post(
        "/image/v2/images",
        json={"name": "cirros", "disk_format": "raw", "container_format": "bare"},
        headers=headers,
    )
    image_id = r.json()["id"]
    data = b"a disk" * 1000
    r = await site.client.put(
        f"/image/v2/images/{image_id}/file",
        content=data,
        headers={**headers, "Content-Type": "application/octet-stream"},
    )
    assert r.status_code == 204, r.text
    image = await ImageRepository(site.app.state.ctx.store).get(image_id)
    assert image is not None
    sha = image.blob_sha256

    r = await as_denver(site, "GET", f"/blobs/{sha}")
    assert r.status_code == 403
    await serve_denver(site)
    r = await as_denver(site, "GET", f"/blobs/{sha}")
    assert r.status_code == 404  # not marked for Denver: as if it were not there
    assert message(r) == f"no blob {sha} for Denver at Berlin"
    r = await as_denver(site, "GET", "/blobs/" + sha.upper())
    assert r.status_code == 400
    assert message(r) == "a blob is named by its sha256: 64 lowercase hex digits"

    await engine.mark(kind="image", key=image_id, to="Denver")
    r = await as_denver(site, "GET", f"/blobs/{sha}")
    assert r.status_code == 200, r.text
    assert r.content == data


async def test_the_progress_report_is_for_a_source_and_ignores_a_bad_depth(
    berlin_with_denver: InProcessSite,
) -> None:
    site = berlin_with_denver
    r = await as_denver(site, "GET", "/progress/report")
    assert r.status_code == 403
    assert message(r) == "site Denver is not a sync source of Berlin"

    await engine_of(site).add_source("Denver")
    for depth in ("not-a-number", "0"):
        r = await as_denver(site, "GET", "/progress/report", headers={DEPTH_HEADER: depth})
        assert r.status_code == 200, r.text
        report = r.json()
        assert report["sources"] == ["Denver"]
        assert report["children"] == []
