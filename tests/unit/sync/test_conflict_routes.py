"""Resolving a conflict takes the operator's decision, and refuses the ones that would
hand over what is not this site's to give (a name, another source's row)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from edgefed.store.sync import SyncReceiver
from edgefed.testkit.inprocess import InProcessSite

RESOLVE = "/edge/v1/sync/conflicts/resolve"


def project(pid: str, name: str) -> dict[str, Any]:
    row = {"id": pid, "name": name, "domain_id": "default", "parent_id": "default",
           "description": "", "enabled": True, "tags": [], "extra": {}}  # fmt: skip
    return {"kind": "project", "key": pid, "version": 1, "op": "upsert", "row": row}


async def push(site: InProcessSite, source: str, *items: dict[str, Any]) -> list[str]:
    receiver = SyncReceiver(site.app.state.ctx.store, max_blob_bytes=0)
    outcome = await receiver.apply_batch(
        source=source, items=list(items), has_blob=lambda _s: True, now=time.time()
    )
    return [r["status"] for r in outcome.results]


async def resolve(site: InProcessSite, h: dict[str, str], key: str, **how: Any) -> httpx.Response:
    body = {"resolve": {"source": "Central", "kind": "project", "id": key, **how}}
    return await site.client.post(RESOLVE, json=body, headers=h)


async def test_adopting_cannot_settle_a_name_nor_take_another_sources_row(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    r = await site.client.post(
        "/identity/v3/projects", json={"project": {"name": "web"}}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    assert await push(site, "Other", project("p-other", "shared")) == ["applied"]
    assert await push(site, "Central", project("p-new", "web"), project("p-other", "x")) == [
        "conflict", "conflict",
    ]  # fmt: skip

    named = await resolve(site, admin_headers, "p-new", adopt=True)
    assert named.status_code == 409 and "cannot settle a name clash" in named.text
    held = await resolve(site, admin_headers, "p-other", adopt=True)
    assert held.status_code == 409 and "received from Other" in held.text
    both = await resolve(site, admin_headers, "p-new", adopt=True, dismiss=True)
    assert both.status_code == 400
    r = await site.client.get("/edge/v1/sync/conflicts?source=Central", headers=admin_headers)
    assert sorted(c["id"] for c in r.json()["conflicts"]) == ["p-new", "p-other"]  # all kept

    dismissed = await resolve(site, admin_headers, "p-other", dismiss=True)
    assert dismissed.status_code == 200
    assert dismissed.json()["resolved"]["resolution"] == "dismissed"
    r = await site.client.get("/edge/v1/sync/conflicts", headers=admin_headers)
    assert [c["id"] for c in r.json()["conflicts"]] == ["p-new"]


async def test_conflicts_are_an_operators_business(site: InProcessSite) -> None:
    for method, path in (("GET", "/edge/v1/sync/conflicts"), ("POST", RESOLVE)):
        r = await site.client.request(method, path, json={})
        assert r.status_code == 401


async def test_resolving_a_conflict_that_is_not_there_is_404(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    r = await resolve(site, admin_headers, "p-none", dismiss=True)
    assert r.status_code == 404
    assert "no sync conflict of Central's project p-none here" in r.text


async def local_project(site: InProcessSite, headers: dict[str, str], name: str) -> str:
    r = await site.client.post(
        "/identity/v3/projects", json={"project": {"name": name}}, headers=headers
    )
    assert r.status_code == 201, r.text
    return str(r.json()["project"]["id"])


async def test_asking_again_wants_the_local_row_out_of_the_way_first(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    mine = await local_project(site, admin_headers, "web")
    assert await push(site, "Central", project(mine, "central-web")) == ["conflict"]

    r = await resolve(site, admin_headers, mine)
    assert r.status_code == 409
    assert f"project {mine} is still here: delete or rename it first" in r.text

    r = await site.client.delete(f"/identity/v3/projects/{mine}", headers=admin_headers)
    assert r.status_code == 204, r.text
    r = await resolve(site, admin_headers, mine)
    assert r.status_code == 200, r.text
    resolved = r.json()["resolved"]
    assert resolved["resolution"] == "requested"
    # Central is not reachable from here: the request is recorded as failed, not lost.
    assert resolved["request"] == {f"project {mine}": 503}
    r = await site.client.get("/edge/v1/sync/conflicts", headers=admin_headers)
    assert r.json()["conflicts"] == []


async def test_a_name_clash_is_asked_again_once_the_name_is_free(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    await local_project(site, admin_headers, "web")
    assert await push(site, "Central", project("p-new", "web")) == ["conflict"]
    r = await resolve(site, admin_headers, "p-new")
    assert r.status_code == 200, r.text
    assert r.json()["resolved"]["clash"] == "name"
    assert r.json()["resolved"]["resolution"] == "requested"


async def test_adopting_hands_a_local_row_to_the_source(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    mine = await local_project(site, admin_headers, "web")
    assert await push(site, "Central", project(mine, "central-web")) == ["conflict"]
    r = await resolve(site, admin_headers, mine, adopt=True)
    assert r.status_code == 200, r.text
    assert r.json()["resolved"]["resolution"] == "adopted"
    # The row is the source's now: its next push applies, and local edits are refused.
    assert await push(site, "Central", {**project(mine, "central-web"), "version": 2}) == [
        "applied"
    ]
    r = await site.client.get(f"/identity/v3/projects/{mine}", headers=admin_headers)
    assert r.json()["project"]["name"] == "central-web"
    r = await site.client.patch(
        f"/identity/v3/projects/{mine}",
        json={"project": {"description": "local edit"}},
        headers=admin_headers,
    )
    assert r.status_code in (403, 409), r.text
