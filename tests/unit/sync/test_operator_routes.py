"""The sync routes an operator calls on one site: the summary, marks, registrations
with sources, receivers' requests and their acceptance, requests for one resource, and
progress; each refusal in words that say what to fix."""

from __future__ import annotations

from typing import Any

import httpx

from edgefed.testkit.inprocess import InProcessSite

SYNC = "/edge/v1/sync"


async def call(
    site: InProcessSite, headers: dict[str, str], method: str, path: str, body: Any = None
) -> httpx.Response:
    return await site.client.request(method, f"{SYNC}{path}", json=body, headers=headers)


def message(r: httpx.Response) -> str:
    return str(r.json())


async def test_the_summary_names_the_site_its_kinds_and_peers(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    r = await call(site, admin_headers, "GET", "")
    assert r.status_code == 200
    summary = r.json()["sync"]
    assert summary["site"] == "Berlin"
    assert {"project", "image", "flavor"} <= set(summary["kinds"])
    assert summary["kinds"] == sorted(summary["kinds"])
    assert (summary["sources"], summary["receivers"]) == ([], [])


OPERATOR_ROUTES = [
    ("GET", ""),
    ("GET", "/marks"),
    ("POST", "/marks"),
    ("DELETE", "/marks/project/p1"),
    ("GET", "/registrations"),
    ("POST", "/registrations"),
    ("DELETE", "/registrations/Central"),
    ("GET", "/receivers"),
    ("POST", "/receivers/Denver/accept"),
    ("DELETE", "/receivers/Denver"),
    ("POST", "/requests"),
    ("GET", "/progress"),
]


async def test_every_operator_route_wants_a_token(site: InProcessSite) -> None:
    for method, path in OPERATOR_ROUTES:
        r = await call(site, {}, method, path, {} if method == "POST" else None)
        assert r.status_code == 401, (method, path)


async def test_a_mark_is_made_listed_and_removed(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    body = {"mark": {"kind": "project", "id": "*", "to": "Denver, @region=eu"}}
    r = await call(site, admin_headers, "POST", "/marks", body)
    assert r.status_code == 201, r.text
    made = {"kind": "project", "id": "*", "to": "Denver,@region=eu", "origin": None}
    assert r.json() == {"mark": made}
    r = await call(site, admin_headers, "GET", "/marks")
    assert r.json() == {"marks": [made]}

    r = await call(site, admin_headers, "DELETE", "/marks/project/*")
    assert r.status_code == 204
    assert (await call(site, admin_headers, "GET", "/marks")).json() == {"marks": []}
    r = await call(site, admin_headers, "DELETE", "/marks/project/*")
    assert r.status_code == 404
    assert "no sync mark on project *" in message(r)


async def test_a_mark_key_may_hold_slashes(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    body = {"mark": {"kind": "flavor_access", "id": "f1|p/1", "to": "Denver"}}
    assert (await call(site, admin_headers, "POST", "/marks", body)).status_code == 201
    # The key is the rest of the path, slashes and all.
    r = await call(site, admin_headers, "DELETE", "/marks/flavor_access/f1|p/1")
    assert r.status_code == 204
    assert (await call(site, admin_headers, "GET", "/marks")).json() == {"marks": []}


BAD_MARKS = [
    ({"kind": "volume", "id": "v1", "to": "*"}, "unknown resource kind 'volume'"),
    ({"kind": "project", "id": "p1", "to": "Denver&&"}, ""),
    ({"kind": "project", "id": "p1"}, "'mark.to' is a required property"),
    ({"kind": "project", "id": "p1", "to": "*", "when": "now"}, "('when' was unexpected)"),
    ({"kind": "", "id": "p1", "to": "*"}, "kind"),
]


async def test_a_bad_mark_is_refused_naming_what_is_wrong(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    for mark, says in BAD_MARKS:
        r = await call(site, admin_headers, "POST", "/marks", {"mark": mark})
        assert r.status_code == 400, r.text
        assert says in message(r), r.text
    r = await call(site, admin_headers, "POST", "/marks", {"marks": {}})
    assert r.status_code == 400
    assert "'mark' is a required property" in message(r)
    assert (await call(site, admin_headers, "GET", "/marks")).json() == {"marks": []}


async def test_registering_wants_another_active_fleet_site(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    itself = await call(
        site, admin_headers, "POST", "/registrations", {"registration": {"source": "Berlin"}}
    )
    assert itself.status_code == 400
    assert "a site cannot receive from itself" in message(itself)
    stranger = await call(
        site, admin_headers, "POST", "/registrations", {"registration": {"source": "Nowhere"}}
    )
    assert stranger.status_code == 404
    assert "site Nowhere is not an active member of this fleet" in message(stranger)
    r = await call(site, admin_headers, "GET", "/registrations")
    assert r.json() == {"sources": [], "receivers": [], "pending": []}


async def test_unregistering_from_a_site_not_a_source_is_404(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    r = await call(site, admin_headers, "DELETE", "/registrations/Central")
    assert r.status_code == 404
    assert "this site (Berlin) is not registered with Central" in message(r)


async def test_a_receiver_accepted_ahead_is_approved_until_it_asks(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    r = await call(site, admin_headers, "POST", "/receivers/Denver/accept")
    assert r.status_code == 200, r.text
    receiver = r.json()["receiver"]
    assert (receiver["name"], receiver["state"], receiver["queued"]) == ("Denver", "approved", 0)
    assert receiver["accepted_at"] is not None

    listed = (await call(site, admin_headers, "GET", "/receivers")).json()["receivers"]
    assert [(x["name"], x["state"]) for x in listed] == [("Denver", "approved")]
    registrations = (await call(site, admin_headers, "GET", "/registrations")).json()
    # Not served yet (it has not asked), and shown as waiting.
    assert registrations == {"sources": [], "receivers": [], "pending": ["Denver"]}

    again = await call(site, admin_headers, "POST", "/receivers/Denver/accept")
    assert again.json()["receiver"]["state"] == "approved"  # idempotent

    assert (await call(site, admin_headers, "DELETE", "/receivers/Denver")).status_code == 204
    assert (await call(site, admin_headers, "GET", "/receivers")).json() == {"receivers": []}
    gone = await call(site, admin_headers, "DELETE", "/receivers/Denver")
    assert gone.status_code == 404
    assert "site Denver has no sync registration at Berlin" in message(gone)


async def test_accepting_wants_another_sites_name(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    for name, says in (
        ("Berlin", "a site cannot receive from itself"),
        ("not a name!", "is not a site name"),
    ):
        r = await call(site, admin_headers, "POST", f"/receivers/{name}/accept")
        assert r.status_code == 400
        assert says in message(r)
    assert (await call(site, admin_headers, "GET", "/receivers")).json() == {"receivers": []}


async def test_a_request_wants_a_known_kind_and_a_source(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    unknown = await call(
        site, admin_headers, "POST", "/requests", {"request": {"kind": "volume", "id": "v1"}}
    )
    assert unknown.status_code == 400
    assert "unknown resource kind 'volume'" in message(unknown)
    lonely = await call(site, admin_headers, "POST", "/requests", {"request": {"id": "img-1"}})
    assert lonely.status_code == 409
    assert "this site is registered with no sync source" in message(lonely)


async def test_a_request_no_source_can_serve_is_404(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    body = {"request": {"kind": "image", "id": "img-1", "source": "Central"}}
    r = await call(site, admin_headers, "POST", "/requests", body)
    assert r.status_code == 404
    assert "no source has image img-1 for this site" in message(r)


async def test_progress_of_this_site_alone(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    r = await call(site, admin_headers, "GET", "/progress?depth=0")
    assert r.status_code == 200, r.text
    progress = r.json()["progress"]
    assert progress["site"] == "Berlin"
    for depth in ("-1", "5", "deep"):
        refused = await call(site, admin_headers, "GET", f"/progress?depth={depth}")
        assert refused.status_code in (400, 422), depth
