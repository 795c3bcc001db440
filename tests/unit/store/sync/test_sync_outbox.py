"""The outbox: one row per (target, resource) holding its latest version; claims in
memory, parents first; outcomes settled in one transaction; the backlog per target."""

from __future__ import annotations

from edgefed.store.engine import Store
from edgefed.store.sync import (
    CONFLICT,
    DONE,
    FAILING,
    PENDING,
    OutboxEntry,
    Outcome,
    SyncOutbox,
    claim,
    delivery_rank,
)
from edgefed.store.sync.changes import ChangeLog


def entry(key: str, version: int, *, kind: str = "project", target: str = "Denver",
          op: str = "upsert") -> OutboxEntry:  # fmt: skip
    return OutboxEntry(target, kind, key, version, op, rank=delivery_rank(kind, op))


async def rows(outbox: SyncOutbox, **filters: object) -> dict[str, dict[str, object]]:
    return {str(r["key"]): r for r in await outbox.entries(limit=1000, **filters)}  # type: ignore[arg-type]


async def test_a_newer_version_supersedes_the_queued_row_and_resets_it(store: Store) -> None:
    outbox = SyncOutbox(store)
    await outbox.enqueue([entry("p1", 5)], now=100.0, force=False)
    failed = [(entry("p1", 5), "boom", 500.0)]
    await outbox.settle_many([Outcome("Denver", done=[], failed=failed, now=110.0)])
    assert (await rows(outbox))["p1"]["attempts"] == 1

    await outbox.enqueue([entry("p1", 7)], now=120.0, force=False)

    row = (await rows(outbox))["p1"]
    assert (row["version"], row["state"], row["attempts"], row["last_error"]) == (
        7,
        PENDING,
        0,
        None,
    )
    # Still undelivered since 100: the lag counts from the first version queued.
    assert row["queued_at"] == 100.0
    assert row["next_at"] == 120.0  # due at once, not at the failed row's retry time


async def test_an_older_or_equal_version_never_replaces_the_queued_one(store: Store) -> None:
    outbox = SyncOutbox(store)
    await outbox.enqueue([entry("p1", 7)], now=100.0, force=False)
    await outbox.enqueue([entry("p1", 3), entry("p1", 7, op="delete")], now=101.0, force=False)
    row = (await rows(outbox))["p1"]
    assert (row["version"], row["op"], row["updated_at"]) == (7, "upsert", 100.0)


async def test_force_requeues_a_delivered_version_but_not_an_undelivered_one(
    store: Store,
) -> None:
    outbox = SyncOutbox(store)
    await outbox.enqueue([entry("done", 4), entry("waiting", 4)], now=100.0, force=False)
    await outbox.settle_many([Outcome("Denver", done=[entry("done", 4)], failed=[], now=105.0)])

    await outbox.enqueue([entry("done", 4), entry("waiting", 4)], now=200.0, force=False)
    assert (await rows(outbox))["done"]["state"] == DONE  # without force: nothing new

    await outbox.enqueue([entry("done", 4), entry("waiting", 4)], now=200.0, force=True)
    after = await rows(outbox)
    assert (after["done"]["state"], after["done"]["queued_at"]) == (PENDING, 200.0)
    assert after["waiting"]["queued_at"] == 100.0  # already waiting: untouched


async def test_claim_due_takes_parents_first_and_only_what_is_due(store: Store) -> None:
    outbox = SyncOutbox(store)
    await outbox.enqueue(
        [entry("child", 1, kind="role_assignment"), entry("parent", 2), entry("later", 3)],
        now=100.0,
        force=False,
    )
    failed = [(entry("later", 3), "refused", 500.0)]
    await outbox.settle_many([Outcome("Denver", done=[], failed=failed, now=101.0)])
    claims: dict[tuple[str, str], int] = {}

    first = await outbox.claim_due("Denver", now=200.0, limit=10, claims=claims)

    assert [e.key for e in first] == ["parent", "child"]  # by rank; "later" waits until 500
    assert claims == {("project", "parent"): 0, ("role_assignment", "child"): 2}
    assert await outbox.claim_due("Denver", now=200.0, limit=10, claims=claims) == []
    claims.clear()  # their pushes settled (not here: they stay pending)
    again = await outbox.claim_due("Denver", now=600.0, limit=10, claims=claims)
    assert [e.key for e in again] == ["parent", "later", "child"]


async def test_a_child_waits_while_a_parent_is_in_flight_on_another_loop(store: Store) -> None:
    outbox = SyncOutbox(store)
    await outbox.enqueue(
        [entry("p1", 1), entry("u|g", 2, kind="group_member"), entry("p2", 3)],
        now=100.0,
        force=False,
    )
    claims: dict[tuple[str, str], int] = {}  # shared by the peer's push loops
    assert [e.key for e in await outbox.claim_due("Denver", now=100.0, limit=1, claims=claims)] == [
        "p1"
    ]
    # Another loop: the parent rank is in flight, so the membership may not overtake it.
    second = await outbox.claim_due("Denver", now=100.0, limit=10, claims=claims)
    assert [e.key for e in second] == ["p2"]
    claims.clear()
    third = await outbox.claim_due("Denver", now=100.0, limit=10, claims=claims)
    assert [e.key for e in third] == ["p1", "p2", "u|g"]


async def test_claim_due_respects_the_limit_and_other_targets(store: Store) -> None:
    outbox = SyncOutbox(store)
    await outbox.enqueue(
        [entry(f"p{n}", n) for n in range(5)] + [entry("x", 9, target="Paris")],
        now=100.0,
        force=False,
    )
    claims: dict[tuple[str, str], int] = {}
    taken = await outbox.claim_due("Denver", now=100.0, limit=2, claims=claims)
    assert [e.key for e in taken] == ["p0", "p1"]  # by version within a rank
    more = await outbox.claim_due("Denver", now=100.0, limit=10, claims=claims)
    assert [e.key for e in more] == ["p2", "p3", "p4"]  # never a row claimed already
    assert await outbox.claim_due("Denver", now=100.0, limit=10, claims=claims) == []


def test_claim_leaves_claimed_rows_and_children_of_rows_in_flight() -> None:
    claims = {("project", "busy"): 0}
    offered = [entry("busy", 2), entry("free", 3), entry("a|b", 4, kind="group_member")]
    taken, left = claim(offered, claims=claims, limit=10)
    assert [e.key for e in taken] == ["free"]
    assert left
    assert claims == {("project", "busy"): 0, ("project", "free"): 0}


def test_claim_stops_at_the_limit_and_says_so() -> None:
    claims: dict[tuple[str, str], int] = {}
    taken, left = claim([entry("a", 1), entry("b", 2), entry("c", 3)], claims=claims, limit=2)
    assert [e.key for e in taken] == ["a", "b"] and left
    taken, left = claim([entry("d", 4)], claims=claims, limit=2)
    assert [e.key for e in taken] == ["d"] and not left


async def test_settling_records_done_failed_and_parked_rows(store: Store) -> None:
    outbox = SyncOutbox(store)
    queued = [entry("ok", 1), entry("bad", 2), entry("clash", 3), entry("paris", 4, target="Paris")]
    await outbox.enqueue(queued, now=100.0, force=False)

    await outbox.settle_many(
        [
            Outcome("Denver", done=[queued[0]], failed=[(queued[1], "E" * 900, 160.0)],
                    now=110.0, conflicts=[(queued[2], "held here")]),
            Outcome("Paris", done=[queued[3]], failed=[], now=111.0),
        ]
    )  # fmt: skip

    denver = await rows(outbox, target="Denver")
    assert (denver["ok"]["state"], denver["ok"]["attempts"], denver["ok"]["updated_at"]) == (
        DONE, 1, 110.0,
    )  # fmt: skip
    bad = denver["bad"]
    assert (bad["state"], bad["next_at"], bad["attempts"]) == (FAILING, 160.0, 1)
    assert bad["last_error"] == "E" * 500  # bounded
    assert (denver["clash"]["state"], denver["clash"]["last_error"]) == (CONFLICT, "held here")
    assert (await rows(outbox, target="Paris"))["paris"]["state"] == DONE
    assert await outbox.next_due("Denver") == 160.0
    assert await outbox.next_due("Paris") is None


async def test_an_outcome_of_a_superseded_version_leaves_the_new_one_alone(store: Store) -> None:
    outbox = SyncOutbox(store)
    await outbox.enqueue([entry("p", 1)], now=100.0, force=False)
    claims: dict[tuple[str, str], int] = {}
    (pushed,) = await outbox.claim_due("Denver", now=100.0, limit=1, claims=claims)
    await outbox.enqueue([entry("p", 2)], now=101.0, force=False)  # changed while in flight

    await outbox.settle_many([Outcome("Denver", done=[pushed], failed=[], now=102.0)])

    row = (await rows(outbox))["p"]
    assert (row["version"], row["state"]) == (2, PENDING)  # the new version still goes


async def test_backlog_counts_undelivered_failing_and_parked_rows_per_target(
    store: Store,
) -> None:
    outbox = SyncOutbox(store)
    await outbox.enqueue([entry("a", 1), entry("b", 2)], now=100.0, force=False)
    await outbox.enqueue([entry("c", 3), entry("d", 4)], now=130.0, force=False)
    await outbox.enqueue([entry("z", 5, target="Paris")], now=140.0, force=False)
    await outbox.settle_many(
        [
            Outcome("Denver", done=[entry("a", 1)], failed=[(entry("b", 2), "refused", 999.0)],
                    now=150.0, conflicts=[(entry("c", 3), "clash")]),
            Outcome("Paris", done=[entry("z", 5)], failed=[], now=150.0),
        ]
    )  # fmt: skip

    backlog = await outbox.backlog()

    assert set(backlog) == {"Denver"}  # Paris has nothing left
    denver = backlog["Denver"]
    assert (denver.pending, denver.failing, denver.conflicts) == (2, 1, 1)  # b and d; b; c
    assert denver.oldest_queued_at == 100.0  # b, queued first and still undelivered
    assert denver.last_error == "refused"
    assert await outbox.counts() == {
        "Denver": {DONE: 1, FAILING: 1, CONFLICT: 1, PENDING: 1},
        "Paris": {DONE: 1},
    }
    assert sorted(await outbox.targets_with_work()) == ["Denver"]


async def test_route_queues_and_moves_the_cursor_in_one_transaction(store: Store) -> None:
    outbox, log = SyncOutbox(store), ChangeLog(store)
    await outbox.route([entry("p", 42)], cursor=42, now=100.0)
    assert await log.cursor() == 42
    assert list(await rows(outbox)) == ["p"]
    await outbox.route([], cursor=50, now=101.0)  # a page that routes to nobody
    assert await log.cursor() == 50


async def test_rows_left_in_flight_by_an_older_version_go_back_to_the_queue(
    store: Store,
) -> None:
    from sqlalchemy import update

    from edgefed.store.sync.tables import INFLIGHT
    from edgefed.store.sync.tables import outbox as table

    outbox = SyncOutbox(store)
    await outbox.enqueue([entry("p", 1)], now=100.0, force=False)
    async with store.write() as conn:
        await conn.execute(update(table).values(state=INFLIGHT))
    assert await outbox.release_inflight() == 1
    assert (await rows(outbox))["p"]["state"] == PENDING
