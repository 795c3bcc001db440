"""Alarms and the fleet registry as the store keeps them.

Alarms: one active alarm per (type, entity) however often or concurrently it is
raised, a refresh only when reason or severity changed, history kept once cleared,
newest first, counted by severity. The registry: entries upserted by name, a stored
entry that no longer passes the checks left out rather than stopping the site, and an
enrollment token used by one site only (a retry of the same join is the same use).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from sqlalchemy import update

from edgefed.core.ed25519 import Ed25519PrivateKey
from edgefed.core.fleet import SiteEntry
from edgefed.core.tokens import public_key_b64
from edgefed.store.alarms import AlarmFilter, AlarmRepository, Severity
from edgefed.store.engine import Store
from edgefed.store.fleet import EnrollmentRecord, FleetRepository, fleet_sites


async def raise_peer_down(
    repo: AlarmRepository, *, reason: str = "no answer", now: float = 10.0, **kw: Any
) -> tuple[Any, bool]:
    severity = kw.pop("severity", Severity.MAJOR)
    return await repo.raise_alarm(
        type="peer_unreachable", severity=severity, entity="paris", reason=reason, now=now, **kw
    )


async def test_raising_again_refreshes_the_active_alarm(store: Store) -> None:
    repo = AlarmRepository(store)
    first, created = await raise_peer_down(repo)
    assert created and first.active and first.origin == "site"
    assert (first.raised_at, first.updated_at) == (10.0, 10.0)

    same, created = await raise_peer_down(repo, now=11.0)
    assert not created
    assert same == first  # nothing changed: not even its time

    worse, created = await raise_peer_down(
        repo, reason="down 5 min", severity=Severity.CRITICAL, now=12.0
    )
    assert not created
    assert worse.id == first.id
    assert (worse.reason, worse.severity) == ("down 5 min", "critical")
    assert (worse.raised_at, worse.updated_at) == (10.0, 12.0)
    assert len(await repo.find(AlarmFilter(state=None))) == 1


async def test_alarms_raised_at_once_are_one_alarm(store: Store) -> None:
    repo = AlarmRepository(store)
    results = await asyncio.gather(*(raise_peer_down(repo, now=float(i)) for i in range(6)))
    assert sum(created for _, created in results) == 1
    assert len({alarm.id for alarm, _ in results}) == 1
    assert len(await repo.find(AlarmFilter())) == 1


async def test_a_cleared_alarm_is_history_and_a_new_one_can_be_raised(store: Store) -> None:
    repo = AlarmRepository(store)
    first, _ = await raise_peer_down(repo)
    cleared = await repo.clear(first.id, now=20.0, cleared_by="operator-1")
    assert (cleared.state, cleared.cleared_at, cleared.cleared_by) == (
        "cleared",
        20.0,
        "operator-1",
    )
    again = await repo.clear(first.id, now=30.0, cleared_by="someone-else")
    assert again == cleared  # clearing twice keeps who cleared it first

    second, created = await raise_peer_down(repo, now=40.0)
    assert created and second.id != first.id
    history = await repo.find(AlarmFilter(state=None))
    assert [(a.id, a.state) for a in history] == [(second.id, "active"), (first.id, "cleared")]


async def test_a_condition_that_went_away_clears_its_alarm_once(store: Store) -> None:
    repo = AlarmRepository(store)
    alarm, _ = await raise_peer_down(repo)
    assert await repo.clear_condition(type="peer_unreachable", entity="paris", now=15.0)
    assert not await repo.clear_condition(type="peer_unreachable", entity="paris", now=16.0)
    assert not await repo.clear_condition(type="peer_unreachable", entity="rome", now=16.0)
    found = await repo.get(alarm.id)
    assert found is not None
    assert (found.state, found.cleared_by, found.cleared_at) == ("cleared", "site", 15.0)
    assert await repo.get("no-such-alarm") is None


async def test_alarms_are_found_by_filter_newest_first(store: Store) -> None:
    repo = AlarmRepository(store)
    for i, (type_, entity, severity) in enumerate(
        [
            ("peer_unreachable", "paris", Severity.MAJOR),
            ("host_down", "h1", Severity.CRITICAL),
            ("host_down", "h2", Severity.WARNING),
            ("capacity", "site", Severity.MINOR),
        ]
    ):
        await repo.raise_alarm(
            type=type_, severity=severity, entity=entity, reason="r", now=float(i)
        )
    await repo.clear_condition(type="capacity", entity="site", now=9.0)

    def entities(found: list[Any]) -> list[str]:
        return [a.entity for a in found]

    assert entities(await repo.find(AlarmFilter())) == ["h2", "h1", "paris"]
    assert entities(await repo.find(AlarmFilter(state=None))) == ["site", "h2", "h1", "paris"]
    assert entities(await repo.find(AlarmFilter(state="cleared"))) == ["site"]
    assert entities(await repo.active_of_type("host_down")) == ["h2", "h1"]
    assert entities(await repo.find(AlarmFilter(severity="critical"))) == ["h1"]
    assert entities(await repo.find(AlarmFilter(entity="paris"))) == ["paris"]
    assert entities(await repo.find(AlarmFilter(state=None, limit=2))) == ["site", "h2"]


async def test_active_counts_name_every_severity(store: Store) -> None:
    repo = AlarmRepository(store)
    assert await repo.active_counts() == {"critical": 0, "major": 0, "minor": 0, "warning": 0}
    await raise_peer_down(repo)
    await repo.raise_alarm(
        type="host_down", severity=Severity.MAJOR, entity="h1", reason="r", now=1.0
    )
    await repo.raise_alarm(
        type="host_down", severity=Severity.WARNING, entity="h2", reason="r", now=1.0
    )
    await repo.clear_condition(type="host_down", entity="h2", now=2.0)
    assert await repo.active_counts() == {"critical": 0, "major": 2, "minor": 0, "warning": 0}


async def test_an_operators_alarm_keeps_who_raised_it(store: Store) -> None:
    repo = AlarmRepository(store)
    alarm, _ = await repo.raise_alarm(
        type="maintenance",
        severity=Severity.MINOR,
        entity="rack-4",
        reason="power work",
        now=5.0,
        origin="operator",
        raised_by="alice",
    )
    assert (alarm.origin, alarm.raised_by) == ("operator", "alice")


# -- the fleet registry -------------------------------------------------------------


def entry(name: str, *, version: int = 1, key: str | None = None, **fields: Any) -> SiteEntry:
    return SiteEntry(
        name=name,
        endpoint=f"http://{name.lower()}.test",
        public_key=key or public_key_b64(Ed25519PrivateKey.generate().public_key()),
        version=version,
        **fields,
    )


async def test_entries_are_upserted_by_name(store: Store) -> None:
    repo = FleetRepository(store)
    assert await repo.all() == []
    await repo.put([])  # nothing to do
    berlin, paris = entry("Berlin"), entry("Paris", labels={"zone": "eu"})
    await repo.put([berlin, paris])
    newer = entry("Berlin", version=2, key=berlin.public_key, capabilities=("compute",))
    await repo.put([newer])

    stored = {e.name: e for e in await repo.all()}
    assert stored == {"Berlin": newer, "Paris": paris}


async def test_a_stored_entry_that_fails_the_checks_is_left_out(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    repo = FleetRepository(store)
    await repo.put([entry("Berlin"), entry("Paris")])
    async with store.write() as conn:
        await conn.execute(
            update(fleet_sites)
            .where(fleet_sites.c.name == "Paris")
            .values(document={"name": "Paris", "endpoint": "nowhere"})
        )
    with caplog.at_level(logging.ERROR, logger="edgefed.store.fleet"):
        assert [e.name for e in await repo.all()] == ["Berlin"]
    assert "'Paris' is invalid and ignored" in caplog.text


def token(token_id: str = "t1", **fields: Any) -> EnrollmentRecord:
    values: dict[str, Any] = {
        "secret_hash": "h",
        "created_at": 1.0,
        "expires_at": 100.0,
        "created_by": "admin",
        "used_at": None,
        "used_by": None,
        "site_name": "Paris",
    }
    values.update(fields)
    return EnrollmentRecord(id=token_id, **values)


async def test_an_enrollment_token_is_kept_unused_until_a_site_uses_it(store: Store) -> None:
    repo = FleetRepository(store)
    await repo.add_enrollment(token(authority=True))
    found = await repo.get_enrollment("t1")
    assert found == token(authority=True)
    assert await repo.get_enrollment("t2") is None

    paris = entry("Paris")
    assert await repo.consume_enrollment_and_put("t1", now=5.0, entry=paris)
    used = await repo.get_enrollment("t1")
    assert used is not None
    assert (used.used_at, used.used_by, used.used_key) == (5.0, "Paris", paris.public_key)
    assert [e.name for e in await repo.all()] == ["Paris"]
    assert [t.id for t in await repo.list_enrollments()] == ["t1"]


async def test_a_used_token_takes_a_retry_of_the_same_join_only(store: Store) -> None:
    repo = FleetRepository(store)
    await repo.add_enrollment(token())
    paris = entry("Paris")
    assert await repo.consume_enrollment_and_put("t1", now=5.0, entry=paris)
    # The same site with the same key retries (its answer was lost): the same enrollment.
    assert await repo.consume_enrollment_and_put("t1", now=6.0, entry=paris)
    # Anyone else with the token is refused, and stored nothing.
    impostor = entry("Paris")  # same name, another key
    assert not await repo.consume_enrollment_and_put("t1", now=7.0, entry=impostor)
    assert not await repo.consume_enrollment_and_put("t1", now=7.0, entry=entry("Rome"))
    assert not await repo.consume_enrollment_and_put("nope", now=7.0, entry=entry("Oslo"))
    assert [(e.name, e.public_key) for e in await repo.all()] == [("Paris", paris.public_key)]


async def test_racing_joins_with_one_token_enroll_one_site(store: Store) -> None:
    repo = FleetRepository(store)
    await repo.add_enrollment(token())
    candidates = [entry(f"Site{i}") for i in range(5)]
    results = await asyncio.gather(
        *(repo.consume_enrollment_and_put("t1", now=5.0, entry=e) for e in candidates)
    )
    assert sum(results) == 1
    winner = candidates[results.index(True)]
    assert [e.name for e in await repo.all()] == [winner.name]
