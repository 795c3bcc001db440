"""The compute store's contracts: flavor names and ids are unique, rows a sync source
delivered are read-only, a task-state change is a compare-and-set, and placing a server
reads and takes a host's capacity in one transaction, so racing boots never overfill it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import update

from edgefed.core.errors import Conflict, Locked, NotFound
from edgefed.store.compute import (
    FlavorRepository,
    HostUsage,
    KeypairRepository,
    QuotaRepository,
    ServerRepository,
)
from edgefed.store.compute.tables import keypairs, quotas
from edgefed.store.engine import Store


def flavor(flavor_id: str, name: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"id": flavor_id, "name": name or flavor_id, "vcpus": 2, "ram": 512, "disk": 10,
            **extra}  # fmt: skip


def server(server_id: str, *, project: str = "p1", vcpus: int = 1, ram: int = 256,
           **extra: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "id": server_id, "name": server_id, "project_id": project, "user_id": "u1",
        "image_id": None, "flavor_id": "f", "flavor": {}, "vcpus": vcpus, "ram": ram,
        "disk": 1, "vm_state": "building", "task_state": "scheduling", "key_name": None,
        "metadata": {}, "tags": [], "security_groups": ["default"], "reservation_id": "r-1",
        "hostname": server_id, **extra,
    }  # fmt: skip


# ---- flavors --------------------------------------------------------------------------


async def test_a_flavor_name_or_id_is_taken_once(store: Store) -> None:
    repo = FlavorRepository(store)
    created = await repo.create(values=flavor("1", "m1.tiny"))
    assert (created.id, created.extra_specs, created.origin) == ("1", {}, None)
    for values in (flavor("2", "m1.tiny"), flavor("1", "other")):
        with pytest.raises(Conflict, match="already exists"):
            await repo.create(values=values)
    await repo.ensure(values=flavor("3", "m1.tiny"))  # seeding: the name exists, no-op
    await repo.ensure(values=flavor("4", "m1.small"))
    assert sorted(f.id for f in await repo.list_all()) == ["1", "4"]


async def test_a_flavor_from_a_source_is_read_only_with_its_access_list(store: Store) -> None:
    repo = FlavorRepository(store)
    synced = await repo.create(values=flavor("s", is_public=False, origin="Paris"))
    for change in (
        repo.update(synced, description="mine now"),
        repo.delete(synced),
        repo.add_access(synced, "p1"),
        repo.remove_access(synced, "p1"),
    ):
        with pytest.raises(Locked, match="Paris"):
            await change
    assert await repo.get("s") == synced


async def test_access_lists_grant_once_and_go_with_their_flavor(store: Store) -> None:
    repo = FlavorRepository(store)
    private = await repo.create(values=flavor("pv", is_public=False))
    await repo.add_access(private, "p2")
    await repo.add_access(private, "p1")
    with pytest.raises(Conflict):
        await repo.add_access(private, "p1")
    assert await repo.access_list("pv") == ["p1", "p2"]
    assert await repo.projects_with_access("p1") == {"pv"}
    await repo.remove_access(private, "p2")
    with pytest.raises(NotFound):
        await repo.remove_access(private, "p2")
    await repo.delete(private)
    assert await repo.projects_with_access("p1") == set()


async def test_an_update_of_a_flavor_gone_meanwhile_is_not_found(store: Store) -> None:
    repo = FlavorRepository(store)
    stale = await repo.create(values=flavor("x"))
    await repo.delete(stale)
    with pytest.raises(NotFound):
        await repo.update(stale, description="late")


# ---- key pairs and quotas --------------------------------------------------------------


async def test_key_pairs_are_unique_per_user_and_listed_by_name(store: Store) -> None:
    repo = KeypairRepository(store)
    for user, name in (("u1", "zeta"), ("u1", "alpha"), ("u2", "alpha")):
        await repo.create(user_id=user, name=name, type="ssh", public_key="k", fingerprint="f")
    with pytest.raises(Conflict, match="'alpha' already exists"):
        await repo.create(user_id="u1", name="alpha", type="ssh", public_key="k", fingerprint="f")
    assert [k.name for k in await repo.list_for(user_id="u1")] == ["alpha", "zeta"]
    assert await repo.count(user_id="u1") == 2
    found = await repo.get(user_id="u2", name="alpha")
    assert found is not None
    await repo.delete(found)
    assert await repo.get(user_id="u2", name="alpha") is None
    async with store.write() as conn:
        await conn.execute(update(keypairs).values(origin="Paris"))
    synced = await repo.get(user_id="u1", name="zeta")
    assert synced is not None
    with pytest.raises(Locked):
        await repo.delete(synced)


async def test_quota_limits_are_set_reset_and_locked_when_synchronised(store: Store) -> None:
    repo = QuotaRepository(store)
    assert await repo.limits(kind="project", owner="p1") == {}  # the defaults apply
    await repo.set_limits(kind="project", owner="p1", limits={"cores": 4, "ram": 1024})
    await repo.set_limits(kind="project", owner="p1", limits={"cores": 8})
    await repo.set_limits(kind="class", owner="default", limits={"cores": 20})
    assert await repo.limits(kind="project", owner="p1") == {"cores": 8, "ram": 1024}
    await repo.reset(kind="project", owner="p1")
    assert await repo.limits(kind="project", owner="p1") == {}
    assert await repo.limits(kind="class", owner="default") == {"cores": 20}

    await repo.set_limits(kind="project", owner="p2", limits={"cores": 2})
    async with store.write() as conn:
        await conn.execute(update(quotas).where(quotas.c.owner == "p2").values(origin="Paris"))
    with pytest.raises(Locked):
        await repo.set_limits(kind="project", owner="p2", limits={"cores": 3})
    with pytest.raises(Locked):
        await repo.reset(kind="project", owner="p2")
    await repo.set_limits(kind="project", owner="p2", limits={"instances": 1})  # a new row: fine
    assert await repo.limits(kind="project", owner="p2") == {"cores": 2, "instances": 1}


# ---- servers ---------------------------------------------------------------------------


async def test_deleted_servers_are_hidden_unless_asked_for(store: Store) -> None:
    repo = ServerRepository(store)
    for sid, project in (("a", "p1"), ("b", "p1"), ("c", "p2")):
        await repo.create(values=server(sid, project=project))
    await repo.update("b", deleted=True, vm_state="deleted", task_state=None)
    assert {s.id for s in await repo.list_all(project_id="p1")} == {"a"}
    assert {s.id for s in await repo.list_all(project_id="p1", include_deleted=True)} == {"a", "b"}
    assert {s.id for s in await repo.list_all(project_id=None)} == {"a", "c"}
    await repo.update("c", vm_state="error")
    assert await repo.count_by_vm_state() == {"building": 1, "error": 1}  # "b" is deleted
    assert await repo.get("b") is None
    gone = await repo.get("b", include_deleted=True)
    assert gone is not None and gone.deleted
    with pytest.raises(NotFound):
        await repo.update("nope", name="x")


async def test_a_task_state_change_is_a_compare_and_set(store: Store) -> None:
    repo = ServerRepository(store)
    await repo.create(values=server("s", task_state=None, vm_state="active"))

    results = await asyncio.gather(
        *(
            repo.transition("s", expect_task=[None], task_state=t)
            for t in ("powering-off", "pausing")
        )
    )

    assert sorted(results) == [False, True]  # one operation starts, the other is refused
    started = await repo.get("s")
    assert started is not None and started.task_state in ("powering-off", "pausing")
    assert await repo.transition("s", expect_task=[started.task_state], task_state=None)
    assert await repo.in_transition() == []
    await repo.update("s", deleted=True)
    assert not await repo.transition("s", expect_task=[None], task_state="rebooting")


async def test_usage_counts_live_servers_of_a_project(store: Store) -> None:
    repo = ServerRepository(store)
    await repo.create(values=server("a", vcpus=2, ram=512))
    await repo.create(values=server("b", vcpus=4, ram=1024))
    await repo.create(values=server("c", project="p2", vcpus=8, ram=8))
    await repo.update("b", deleted=True)
    assert await repo.usage_by_project("p1") == (1, 2, 512)
    assert await repo.usage_by_project("nobody") == (0, 0, 0)


async def test_racing_placements_never_overfill_a_host(store: Store) -> None:
    repo = ServerRepository(store)
    capacity = 3  # servers per host
    ids = [f"s{n}" for n in range(8)]
    for sid in ids:
        await repo.create(values=server(sid, vcpus=1))

    def choose(usages: dict[str, HostUsage]) -> str | None:
        for host in ("h1", "h2"):
            if usages.get(host, HostUsage(host)).servers < capacity:
                return host
        return None

    hosts = await asyncio.gather(*(repo.claim_host(sid, choose=choose) for sid in ids))

    assert sorted(h for h in hosts if h) == ["h1"] * 3 + ["h2"] * 3
    assert hosts.count(None) == 2
    usages = await repo.host_usages()
    assert {h: (u.servers, u.vcpus, u.ram_mb, u.disk_gb) for h, u in usages.items()} == {
        "h1": (3, 3, 768, 3),
        "h2": (3, 3, 768, 3),
    }


async def test_instance_actions_are_listed_newest_first(store: Store) -> None:
    repo = ServerRepository(store)
    await repo.create(values=server("s"))
    for action in ("create", "stop", "start"):
        await repo.record_action(
            server_id="s", action=action, request_id=f"req-{action}", user_id="u1",
            project_id="p1",
        )  # fmt: skip
    assert [a.action for a in await repo.actions("s")] == ["start", "stop", "create"]
    assert await repo.actions("other") == []
