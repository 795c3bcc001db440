"""A receiver applies a run of plain upserts in bulk with the same verdicts as one by one."""

from __future__ import annotations

import time
import uuid
from typing import Any

from edgefed.store.sync import SyncReceiver
from edgefed.testkit.inprocess import InProcessSite


def project(name: str, *, version: int, pid: str | None = None) -> dict[str, Any]:
    pid = pid or uuid.uuid4().hex
    row = {"id": pid, "name": name, "domain_id": "default", "description": "", "enabled": True,
           "is_domain": False, "parent_id": "default", "extra": {}}  # fmt: skip
    return {"kind": "project", "key": pid, "version": version, "op": "upsert", "row": row,
            "targets": "*"}  # fmt: skip


async def apply(site: InProcessSite, items: list[dict[str, Any]], source: str = "Central") -> Any:
    receiver = SyncReceiver(site.app.state.ctx.store, max_blob_bytes=1 << 30)
    outcome = await receiver.apply_batch(
        source=source, items=items, has_blob=lambda _sha: True, now=time.time()
    )
    return outcome.results


def statuses(results: list[dict[str, Any]]) -> list[str]:
    return [r["status"] if "code" not in r else f"{r['status']} {r['code']}" for r in results]


async def test_a_run_applies_updates_and_judges_each_item(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    first = [project(f"bulk-{n}", version=10 + n) for n in range(5)]
    assert statuses(await apply(site, first)) == ["applied"] * 5

    r = await site.client.post(
        "/identity/v3/projects", json={"project": {"name": "local"}}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    renamed = project("bulk-0-v2", version=20, pid=first[0]["key"])
    older = project("bulk-1", version=5, pid=first[1]["key"])
    again = first[2]
    clash = project("local", version=30)  # a project of this site's own has this name
    twin_a, twin_b = project("twin", version=31), project("twin", version=32)
    bad = project("bad", version=33)
    bad["row"] = {"id": bad["key"]}  # no name
    results = await apply(site, [renamed, older, again, clash, twin_a, twin_b, bad])
    assert statuses(results) == [
        "applied", "stale", "duplicate", "conflict 409", "applied", "rejected 409", "rejected 400",
    ]  # fmt: skip
    assert "this site's own" in results[3]["error"] and "name=local" in results[3]["error"]
    assert "name" in results[6]["error"]

    r = await site.client.get(f"/identity/v3/projects/{first[0]['key']}", headers=admin_headers)
    assert r.json()["project"]["name"] == "bulk-0-v2"
    # Locked at the receiver, naming its source; another source may not take it over.
    r = await site.client.patch(
        f"/identity/v3/projects/{first[0]['key']}",
        json={"project": {"description": "x"}},
        headers=admin_headers,
    )
    assert r.status_code == 409 and "Central" in r.text
    stolen = project("bulk-3", version=99, pid=first[3]["key"])
    (result,) = await apply(site, [stolen], source="Elsewhere")
    assert result["status"] == "conflict" and "Central" in result["error"]


async def test_runs_and_children_keep_their_order(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    parent = project("with-quota", version=40)
    quota = {
        "kind": "quota",
        "key": f"project|{parent['key']}|cores",
        "version": 41,
        "op": "upsert",
        "row": {"kind": "project", "owner": parent["key"], "resource": "cores", "hard_limit": 5},
    }
    after = project("after-child", version=42)
    assert statuses(await apply(site, [parent, quota, after])) == ["applied"] * 3
