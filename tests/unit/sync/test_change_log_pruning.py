"""Change-log pruning and batched child lookups on one in-process site (SQLite or PostgreSQL)."""

from __future__ import annotations

from sync_support import create, engine_of

from edgefed.store.sync import SyncRepository
from edgefed.sync.state import SyncEngine
from edgefed.testkit.inprocess import InProcessSite


async def route_everything(engine: SyncEngine) -> None:
    for _ in range(100):  # bounded: a page per call
        if not await engine.router.route_once():
            return
    raise AssertionError("the change log did not drain")


async def test_pruning_keeps_each_resource_version_and_drops_dead_history(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    engine = engine_of(site)
    # The test routes and prunes by hand: the site's own router would race it to the
    # first prune (it prunes when first woken, and every write wakes it).
    await engine.router.stop()
    repo: SyncRepository = engine.repo
    kept = (await create(site, admin_headers, "/identity/v3/projects", {"project": {"name": "a"}}))[
        "project"
    ]["id"]
    for n in range(5):
        r = await site.client.patch(
            f"/identity/v3/projects/{kept}",
            json={"project": {"description": f"v{n}"}},
            headers=admin_headers,
        )
        assert r.status_code == 200, r.text
    gone = (await create(site, admin_headers, "/identity/v3/projects", {"project": {"name": "b"}}))[
        "project"
    ]["id"]
    r = await site.client.delete(f"/identity/v3/projects/{gone}", headers=admin_headers)
    assert r.status_code == 204, r.text
    last = (await create(site, admin_headers, "/identity/v3/projects", {"project": {"name": "c"}}))[
        "project"
    ]["id"]
    version_before = (await repo.versions_of([("project", kept)]))[("project", kept)]
    await route_everything(engine)
    before = await repo.change_count()

    dropped = await engine.router.maybe_prune(force=True)

    assert dropped >= 5 + 2  # five superseded edits, the deleted project's insert and delete
    assert await repo.change_count() == before - dropped
    after = await repo.versions_of([("project", kept), ("project", last)])
    assert after[("project", kept)] == version_before  # a resource's version survives
    assert after[("project", last)][0] > 0
    # New changes still get higher versions than anything before.
    r = await site.client.patch(
        f"/identity/v3/projects/{kept}",
        json={"project": {"description": "v9"}},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    newest = (await repo.versions_of([("project", kept)]))[("project", kept)]
    assert newest[0] > max(version_before[0], after[("project", last)][0])


async def test_unrouted_changes_are_never_pruned(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    engine = engine_of(site)
    await engine.router.stop()  # nothing consumes the log now
    pid = (await create(site, admin_headers, "/identity/v3/projects", {"project": {"name": "x"}}))[
        "project"
    ]["id"]
    cursor = await engine.repo.cursor()
    for n in range(3):
        await site.client.patch(
            f"/identity/v3/projects/{pid}", json={"project": {"description": f"{n}"}},
            headers=admin_headers,
        )  # fmt: skip
    pending = await engine.repo.changes_after(cursor, limit=100)
    await engine.router.maybe_prune(force=True)
    assert await engine.repo.changes_after(cursor, limit=100) == pending


async def test_children_of_many_parents_come_back_in_one_pass(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    engine = engine_of(site)
    roles = (await site.client.get("/identity/v3/roles?name=member", headers=admin_headers)).json()
    role = roles["roles"][0]["id"]
    user = (
        await create(
            site,
            admin_headers,
            "/identity/v3/users",
            {"user": {"name": "u", "password": "pw-12345678"}},
        )
    )["user"]["id"]
    projects = []
    for n in range(3):
        pid = (
            await create(
                site, admin_headers, "/identity/v3/projects", {"project": {"name": f"p{n}"}}
            )
        )["project"]["id"]
        r = await site.client.put(
            f"/identity/v3/projects/{pid}/users/{user}/roles/{role}", headers=admin_headers
        )
        assert r.status_code == 204, r.text
        projects.append(pid)
    refs = await engine.router._with_children([("project", p) for p in projects])
    assignments = {key for kind, key in refs if kind == "role_assignment"}
    assert assignments == {f"user|{user}|project|{p}|{role}" for p in projects}
    assert {("project", p) for p in projects} <= set(refs)
