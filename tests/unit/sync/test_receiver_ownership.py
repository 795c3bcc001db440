"""A push changes only what its source owns: the receiver's rows, rows of another source
and rows its children point at are never overwritten; clashes are recorded; malformed
items are refused one by one and leave nothing behind (one in-process site, the
receiver's store driven directly)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import func, select
from sync_support import create

from edgefed.core.ids import predictable_id
from edgefed.store.identity import projects
from edgefed.store.sync import ConflictRepository, PushOutcome, Revocation, SyncReceiver
from edgefed.store.sync import tables as sync_tables
from edgefed.sync.images import BlobFetcher
from edgefed.sync.state import SyncEngine
from edgefed.sync.targets import normalise
from edgefed.testkit.inprocess import InProcessSite

MAX_BLOB = 10 * 1024 * 1024
ROLE_MEMBER = predictable_id("role", "member", domain_id="")
ROLE_ADMIN = predictable_id("role", "admin", domain_id="")
DEFAULT = "default"


def receiver_of(site: InProcessSite) -> SyncReceiver:
    return SyncReceiver(
        site.app.state.ctx.store, max_blob_bytes=MAX_BLOB, normalise_targets=normalise
    )


async def push(
    site: InProcessSite, items: list[dict[str, Any]], source: str = "Central"
) -> PushOutcome:
    return await receiver_of(site).apply_batch(
        source=source, items=items, has_blob=lambda _sha: False, now=time.time()
    )


def statuses(outcome: PushOutcome) -> list[str]:
    return [f"{r['status']} {r['code']}" if "code" in r else r["status"] for r in outcome.results]


def item(kind: str, key: str, version: int, row: dict[str, Any] | None) -> dict[str, Any]:
    doc: dict[str, Any] = {"kind": kind, "key": key, "version": version}
    doc.update({"op": "upsert", "row": row} if row is not None else {"op": "delete"})
    return doc


def project(name: str, version: int, *, description: str = "") -> dict[str, Any]:
    pid = predictable_id("project", name)
    row = {"id": pid, "name": name, "domain_id": DEFAULT, "parent_id": DEFAULT,
           "description": description, "enabled": True, "tags": [], "extra": {}}  # fmt: skip
    return item("project", pid, version, row)


def user(name: str, version: int, *, enabled: bool = True) -> dict[str, Any]:
    uid = predictable_id("user", name)
    row = {"id": uid, "name": name, "domain_id": DEFAULT, "enabled": enabled,
           "password_hash": None, "password_set_at": None, "default_project_id": None,
           "extra": {}}  # fmt: skip
    return item("user", uid, version, row)


def assignment(
    version: int, *, actor: str, target: str, role: str = ROLE_MEMBER,
    actor_type: str = "user", target_type: str = "project", delete: bool = False,
) -> dict[str, Any]:  # fmt: skip
    key = f"{actor_type}|{actor}|{target_type}|{target}|{role}"
    row = {"actor_type": actor_type, "actor_id": actor, "target_type": target_type,
           "target_id": target, "role_id": role}  # fmt: skip
    return item("role_assignment", key, version, None if delete else row)


def nested(depth: int) -> Any:
    doc: Any = 1
    for _ in range(depth):
        doc = [doc]
    return doc


async def counts(site: InProcessSite) -> dict[str, int]:
    """Rows of every table a push may write."""
    tables = {
        "applied": sync_tables.applied,
        "marks": sync_tables.marks,
        "fetches": sync_tables.fetches,
        "conflicts": sync_tables.conflicts,
        "projects": projects,
    }
    async with site.app.state.ctx.store.read() as conn:
        return {
            name: int((await conn.execute(select(func.count()).select_from(t))).scalar() or 0)
            for name, t in tables.items()
        }


async def test_the_receivers_own_rows_are_never_overwritten_nor_deleted(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    local = await create(
        site, admin_headers, "/identity/v3/projects",
        {"project": {"name": "demo", "description": "Berlin's own"}},
    )  # fmt: skip
    pid = local["project"]["id"]
    assert pid == predictable_id("project", "demo")  # what makes the clash possible

    first = await push(site, [project("demo", 10, description="central's")])
    assert statuses(first) == ["conflict 409"]
    assert first.results[0]["held"] == {"kind": "project", "id": pid, "origin": None}
    assert "this site's own" in first.results[0]["error"]
    again = await push(site, [project("demo", 11), project("demo", 11)])  # not bulk: twice
    assert statuses(again) == ["conflict 409", "conflict 409"]
    gone = await push(site, [item("project", pid, 12, None)])
    assert statuses(gone) == ["conflict 409"]
    admin_user = await push(site, [user("admin", 13, enabled=False)])
    assert statuses(admin_user) == ["conflict 409"]

    r = await site.client.get(f"/identity/v3/projects/{pid}", headers=admin_headers)
    assert r.status_code == 200 and r.json()["project"]["description"] == "Berlin's own"
    assert await site.token()  # the local admin still logs in
    conflicts = await ConflictRepository(site.app.state.ctx.store).list()
    by_key = {(c["kind"], c["key"]): c for c in conflicts}
    demo = by_key[("project", pid)]
    assert demo["source"] == "Central" and demo["held_origin"] is None and demo["clash"] == "id"
    assert demo["count"] == 4 and demo["op"] == "delete"
    assert demo["first_seen"] <= demo["last_seen"]
    assert ("user", predictable_id("user", "admin")) in by_key


async def test_rows_of_another_source_are_never_taken(site: InProcessSite) -> None:
    assert statuses(await push(site, [project("ops", 5), user("carol", 6)])) == ["applied"] * 2
    pid = predictable_id("project", "ops")
    rogue = await push(
        site,
        [
            project("ops", 50, description="rogue"),  # the same key
            item("project", pid, 51, None),  # its delete
            item("project", "f" * 32, 52, {**project("ops", 52)["row"], "id": "f" * 32}),  # name
            item(
                "quota",
                f"project|{pid}|cores",
                53,
                {"kind": "project", "owner": pid, "resource": "cores", "hard_limit": 999},
            ),
        ],  # fmt: skip
        source="Rogue",
    )
    assert statuses(rogue) == ["conflict 409"] * 4
    assert [r["held"]["origin"] for r in rogue.results] == ["Central"] * 4
    assert [r["held"]["id"] for r in rogue.results] == [pid] * 4
    # Central still owns it and goes on changing it.
    assert statuses(await push(site, [project("ops", 7, description="v2")])) == ["applied"]


async def test_children_need_parents_of_the_pushing_source(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    assert statuses(await push(site, [project("ops", 5), user("carol", 6)])) == ["applied"] * 2
    carol, ops = predictable_id("user", "carol"), predictable_id("project", "ops")
    admin_project = predictable_id("project", "admin")
    local_admin = predictable_id("user", "admin")
    group = await create(site, admin_headers, "/identity/v3/groups", {"group": {"name": "ops"}})
    gid = group["group"]["id"]
    r = await site.client.post(
        "/compute/v2.1/flavors",
        json={"flavor": {"name": "local.small", "ram": 64, "vcpus": 1, "disk": 0,
                         "os-flavor-access:is_public": False}},
        headers=admin_headers,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    flavor = r.json()["flavor"]["id"]
    outcome = await push(
        site,
        [
            # this site's authority: its admin project, its system and domains
            assignment(7, actor=carol, target=admin_project, role=ROLE_ADMIN),
            assignment(8, actor=carol, target="all", target_type="system", role=ROLE_ADMIN),
            assignment(9, actor=carol, target=DEFAULT, target_type="domain", role=ROLE_ADMIN),
            item(
                "quota",
                "class|default|cores",
                10,
                {"kind": "class", "owner": "default", "resource": "cores", "hard_limit": 0},
            ),
            item(
                "quota",
                f"project|{admin_project}|cores",
                11,
                {"kind": "project", "owner": admin_project, "resource": "cores", "hard_limit": 0},
            ),
            item(
                "keypair",
                f"{local_admin}|stolen",
                12,
                {
                    "user_id": local_admin,
                    "name": "stolen",
                    "type": "ssh",
                    "public_key": "ssh-ed25519 AAAA",
                    "fingerprint": "x",
                    "created_at": "2026-01-01T00:00:00",
                },
            ),
            item("group_member", f"{gid}|{carol}", 13, {"group_id": gid, "user_id": carol}),
            item("flavor_access", f"{flavor}|{ops}", 14, {"flavor_id": flavor, "project_id": ops}),
            # the source's own: its user on its project
            assignment(15, actor=carol, target=ops),
        ],  # fmt: skip
    )
    assert statuses(outcome) == [
        "conflict 409", "rejected 403", "rejected 403", "rejected 403", "conflict 409",
        "conflict 409", "conflict 409", "conflict 409", "applied",
    ]  # fmt: skip
    held = [r["held"]["id"] for r in outcome.results if r["status"] == "conflict"]
    assert held == [admin_project, admin_project, local_admin, gid, flavor]
    r = await site.client.get(
        f"/identity/v3/role_assignments?user.id={carol}", headers=admin_headers
    )
    assert [a["scope"]["project"]["id"] for a in r.json()["role_assignments"]] == [ops]


async def test_malformed_items_are_refused_one_by_one_and_leave_nothing(
    site: InProcessSite,
) -> None:
    good = project("fine", 3)
    pid = good["key"]
    row = good["row"]
    before = await counts(site)
    outcome = await push(
        site,
        [
            {**good, "version": 2**70},
            {**good, "version": True},
            {**good, "version": -1},
            {**good, "op": "drop"},
            {**good, "kind": "secrets"},
            {**good, "kind": ["project"]},
            {**good, "key": "x" * 600},
            {**good, "key": None},
            {**good, "row": {**row, "name": {"$ne": 1}}},
            {**good, "row": {**row, "name": "nul\x00name"}},
            {**good, "row": {**row, "name": "n" * 65}},
            {**good, "row": {**row, "enabled": "yes"}},
            {**good, "row": {**row, "extra": {"a": nested(40)}}},
            {**good, "row": {**row, "id": "other"}},
            {**good, "row": "not a row"},
            {**good, "targets": "(("},
            {**good, "targets": 7},
            item(
                "quota",
                f"project|{pid}|cores",
                4,
                {"kind": "project", "owner": pid, "resource": "cores", "hard_limit": 2**40},
            ),
            item(
                "keypair",
                f"{pid}|k",
                5,
                {
                    "user_id": pid,
                    "name": "k",
                    "type": "ssh",
                    "public_key": "p",
                    "fingerprint": "f",
                    "created_at": "yesterday",
                },
            ),
            item("role_assignment", "user|a|project", 6, None),
        ],  # fmt: skip
    )
    codes = [r.get("code") for r in outcome.results]
    assert codes == [400] * len(codes), outcome.results
    assert all(r["status"] == "rejected" and r["error"] for r in outcome.results)
    assert await counts(site) == before  # no row, version, mark, fetch or conflict left

    errors = [r["error"] for r in outcome.results]
    assert "version" in errors[0] and "name must be a string" in errors[8]
    assert "NUL" in errors[9] and "longer than 64" in errors[10] and "true or false" in errors[11]
    assert "deeper" in errors[12] and "targets" in errors[15]
    assert "out of range" in errors[17] and "ISO 8601" in errors[18]
    # The well-formed item alone goes in.
    assert statuses(await push(site, [good])) == ["applied"]


async def test_blob_names_are_sha256_and_sizes_bounded(site: InProcessSite) -> None:
    now = "2026-01-01T00:00:00"

    def image(key: str, sha: Any, size: Any) -> dict[str, Any]:
        return item("image", key, 9, {
            "id": key, "name": "img", "status": "active", "size": size, "virtual_size": None,
            "disk_format": "raw", "container_format": "bare", "owner": None,
            "visibility": "public", "protected": False, "os_hidden": False, "min_disk": 0,
            "min_ram": 0, "checksum": None, "os_hash_algo": None, "os_hash_value": None,
            "blob_sha256": sha, "properties": {}, "tags": [], "created_at": now,
            "updated_at": now,
        })  # fmt: skip

    before = await counts(site)
    outcome = await push(
        site,
        [
            image("11111111-1111-1111-1111-111111111111", "../keys/signing.pem", 10),
            image("22222222-2222-2222-2222-222222222222", "../" + "a" * 61, 10),
            image("33333333-3333-3333-3333-333333333333", "A" * 64, 10),
            image("44444444-4444-4444-4444-444444444444", "a" * 64, MAX_BLOB + 1),
            image("55555555-5555-5555-5555-555555555555", "a" * 64, None),
        ],
    )
    assert statuses(outcome) == ["rejected 400"] * 3 + ["rejected 413", "rejected 400"]
    assert "64 lowercase hex" in outcome.results[0]["error"]
    assert "max_image_bytes" in outcome.results[3]["error"]
    assert await counts(site) == before
    fetcher: BlobFetcher = site.app.state.ctx.slots.require(SyncEngine).fetcher
    assert (site.settings.data_dir / "keys" / "signing.pem").exists()
    assert not fetcher.has_blob("../keys/signing.pem")
    ok = await push(site, [image("66666666-6666-6666-6666-666666666666", "a" * 64, 10)])
    assert statuses(ok) == ["applied"]


async def test_pushes_that_take_rights_away_name_whose_tokens_to_revoke(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    carol, ops = predictable_id("user", "carol"), predictable_id("project", "ops")
    setup = await push(site, [project("ops", 5), user("carol", 6), user("dave", 7)])
    assert statuses(setup) == ["applied"] * 3
    group = item("group", "g1", 8, {"id": "g1", "name": "crew", "domain_id": DEFAULT,
                                     "description": "", "extra": {}})  # fmt: skip
    member = item("group_member", f"g1|{carol}", 9, {"group_id": "g1", "user_id": carol})
    granted = await push(site, [group, member, assignment(10, actor=carol, target=ops)])
    assert statuses(granted) == ["applied"] * 3 and granted.revocations == []

    taken = await push(
        site,
        [
            assignment(11, actor=carol, target=ops, delete=True),
            item("group_member", f"g1|{carol}", 12, None),
            user("dave", 13, enabled=False),
        ],
    )
    assert statuses(taken) == ["applied"] * 3
    dave = predictable_id("user", "dave")
    assert taken.revocations == [Revocation(carol, ops), Revocation(carol), Revocation(dave)]
    # Already disabled: nothing more to revoke; deleted: every token.
    again = await push(site, [user("dave", 14, enabled=False), item("user", dave, 15, None)])
    assert again.revocations == [Revocation(dave)]


async def test_resolving_by_adopting_hands_the_row_to_the_source(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    await create(site, admin_headers, "/identity/v3/projects", {"project": {"name": "demo"}})
    assert statuses(await push(site, [project("demo", 10, description="central's")])) == [
        "conflict 409"
    ]
    conflicts = ConflictRepository(site.app.state.ctx.store)
    (conflict,) = await conflicts.list(source="Central")
    assert await conflicts.still_held(conflict)
    assert await conflicts.adopt(conflict)
    assert await conflicts.list() == []
    assert statuses(await push(site, [project("demo", 10, description="central's")])) == ["applied"]
    pid = predictable_id("project", "demo")
    r = await site.client.get(f"/identity/v3/projects/{pid}", headers=admin_headers)
    assert r.json()["project"]["description"] == "central's"
    r = await site.client.patch(
        f"/identity/v3/projects/{pid}", json={"project": {"description": "x"}},
        headers=admin_headers,
    )  # fmt: skip
    assert r.status_code == 409 and "Central" in r.text  # locked, as any received row


async def test_registration_states_at_a_source(site: InProcessSite) -> None:
    engine = site.app.state.ctx.slots.require(SyncEngine)
    repo = engine.repo
    now = time.time()
    assert await repo.request_receiver("Denver", now=now, accept=False) == "pending"
    assert await repo.list_receivers() == []  # pending: not served
    assert await repo.accept_receiver("Denver", now=now) == ("pending", "accepted")
    assert await repo.accept_receiver("Paris", now=now) == (None, "approved")
    assert await repo.list_receivers() == ["Denver"]
    assert await repo.request_receiver("Paris", now=now, accept=False) == "accepted"
    assert await repo.request_receiver("Tokyo", now=now, accept=True) == "accepted"
    states = {r["name"]: r["state"] for r in await repo.registrations()}
    assert states == {"Denver": "accepted", "Paris": "accepted", "Tokyo": "accepted"}
    assert await repo.remove_receiver("Tokyo") and await repo.list_receivers() == [
        "Denver", "Paris",
    ]  # fmt: skip
