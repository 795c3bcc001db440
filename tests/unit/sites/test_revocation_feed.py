"""The revocation feed of the sites service: events of other sites verified and taken
whole, this site's own pushed to every peer at once, and forgotten when no token can
match them any more, without ever numbering one twice."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sites_kit import Member, enrolled_by, registry_of, revoked_by

from edgefed.core.errors import ValidationFailed
from edgefed.core.revocation import RevocationEvent
from edgefed.core.sitesig import SITE_HEADER, TARGET_HEADER
from edgefed.services.sites.revocations import BATCH_LIMIT, GOSSIP_PATH, RevocationFeed
from edgefed.testkit.asgi_fleet import FleetTransport
from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings
from edgefed.testkit.inprocess_fleet import ctx_of


def feed_of(site: InProcessSite) -> RevocationFeed:
    return registry_of(site).feed


def event_of(member: Member, seq: int, **fields: Any) -> RevocationEvent:
    values: dict[str, Any] = {
        "issued_before": time.time(),
        "audit_id": f"audit-{seq}",
        "origin": member.name,
        "seq": seq,
        "created_at": time.time(),
        **fields,
    }
    return RevocationEvent(**values).signed_by(member.key)


async def paris_in(site: InProcessSite) -> Member:
    paris = Member("Paris")
    await registry_of(site).merge([enrolled_by(site, paris)])
    return paris


async def test_events_of_a_member_are_verified_kept_and_stored_once(site: InProcessSite) -> None:
    paris = await paris_in(site)
    feed = feed_of(site)
    batch = [event_of(paris, 1).to_json(), event_of(paris, 2).to_json()]
    assert await feed.accept(batch) == 2
    assert await feed.accept(batch) == 0  # held already
    revocations = ctx_of(site).revocations
    assert revocations.digest()["Paris"] == 2
    stored = await feed.repo.all_since(0.0)
    assert sorted(e.seq for e in stored if e.origin == "Paris") == [1, 2]


async def test_a_member_revokes_its_own_tokens_only(site: InProcessSite) -> None:
    paris = await paris_in(site)
    revocations = ctx_of(site).revocations
    # Signed by Paris, but aimed at Berlin's tokens: refused, with the good one beside it.
    batch = [event_of(paris, 1).to_json(), event_of(paris, 2, issuer="Berlin").to_json()]
    with pytest.raises(ValidationFailed, match="revokes tokens of Paris only"):
        await feed_of(site).accept(batch)
    assert not revocations.holds("Paris", 1)
    # An event of Paris without an issuer counts for Paris's tokens, not Berlin's.
    await feed_of(site).accept([event_of(paris, 3, audit_id=None, user_id="u1").to_json()])
    berlin_token = {"iss": "Berlin", "iat": 1.0, "user": {"id": "u1"}}
    paris_token = {"iss": "Paris", "iat": 1.0, "user": {"id": "u1"}}
    assert not revocations.is_revoked(berlin_token)
    assert revocations.is_revoked(paris_token)


async def test_a_forged_event_refuses_the_whole_batch(site: InProcessSite) -> None:
    paris = await paris_in(site)
    good = event_of(paris, 1)
    forged = dataclasses.replace(event_of(paris, 2), user_id="someone-else")
    with pytest.raises(ValidationFailed, match="Paris#2: the signature does not verify"):
        await feed_of(site).accept([good.to_json(), forged.to_json()])
    assert not ctx_of(site).revocations.holds("Paris", 1)
    assert await feed_of(site).repo.all_since(0.0) == []


async def test_events_nobody_here_can_check_or_needs_are_passed_over(site: InProcessSite) -> None:
    stranger = Member("Stranger")
    berlin_like = Member("Berlin")  # this site's own name: its own events are held here
    assert await feed_of(site).accept([event_of(stranger, 1).to_json()]) == 0
    assert await feed_of(site).accept([event_of(berlin_like, 7).to_json()]) == 0
    assert ctx_of(site).revocations.digest() == {}
    # A revoked member's events too: its tokens fail anyway.
    paris = await paris_in(site)
    entry = registry_of(site).view.entries["Paris"]
    await registry_of(site).merge([revoked_by(site, entry)])
    assert await feed_of(site).accept([event_of(paris, 1).to_json()]) == 0


@pytest.mark.parametrize("raw", ["events", {"seq": 1}, [{"seq": 1}], [1, 2], [None]], ids=repr)
async def test_malformed_batches_are_refused(site: InProcessSite, raw: Any) -> None:
    await paris_in(site)
    with pytest.raises(ValidationFailed):
        await feed_of(site).accept(raw)


async def test_a_batch_is_bounded(site: InProcessSite) -> None:
    paris = await paris_in(site)
    event = event_of(paris, 1).to_json()
    with pytest.raises(ValidationFailed, match=f"at most {BATCH_LIMIT}"):
        await feed_of(site).accept([event] * (BATCH_LIMIT + 1))
    assert await feed_of(site).accept(None) == 0


async def test_a_peer_lacks_nothing_only_when_this_site_holds_all_it_holds(
    site: InProcessSite,
) -> None:
    paris = await paris_in(site)
    feed = feed_of(site)
    assert feed.lacks_nothing({})
    assert not feed.lacks_nothing({"Paris": 1})
    await feed.accept([event_of(paris, 1).to_json()])
    assert feed.lacks_nothing({"Paris": 1})
    assert [e["seq"] for e in feed.missing_for({})] == [1]
    assert feed.missing_for({"Paris": 1}) == []


async def test_an_event_made_here_is_pushed_to_every_active_peer(tmp_path: Path) -> None:
    transport = FleetTransport()
    received: dict[str, list[httpx.Request]] = {"Paris": [], "Rome": []}

    def peer(name: str, status: int) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            received[name].append(request)
            return httpx.Response(status, json={})

        return httpx.MockTransport(handle)

    settings = site_settings(tmp_path / "berlin", gossip_interval_seconds=3600.0)
    async with run_site(settings, transport=transport) as site:
        for name, status in (("Paris", 200), ("Rome", 500), ("Oslo", 200)):
            member = Member(name)
            await registry_of(site).merge([enrolled_by(site, member)])
            transport.apps[f"{name.lower()}.test"] = peer(name, status)  # type: ignore[assignment]
        transport.cut.add("oslo.test")  # one peer down: the others still get it
        oslo = registry_of(site).view.entries["Oslo"]
        await registry_of(site).merge([revoked_by(site, oslo)])  # not active: not pushed
        token = await site.token()
        r = await site.client.delete(
            "/identity/v3/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token}
        )
        assert r.status_code == 204
        await feed_of(site).drain()
    for name in ("Paris", "Rome"):
        [request] = received[name]
        assert request.url.path == GOSSIP_PATH
        assert (request.headers[SITE_HEADER], request.headers[TARGET_HEADER]) == ("Berlin", name)
        [event] = orjson.loads(request.content)["revocation_events"]
        assert (event["origin"], event["seq"]) == ("Berlin", 1)


def test_an_event_made_outside_a_running_loop_is_left_to_gossip() -> None:
    from types import SimpleNamespace

    from edgefed.api.revocation import RevocationList

    revocations = RevocationList(self_name="Berlin")
    ctx = SimpleNamespace(store=None, clock=time.time, revocations=revocations)
    feed = RevocationFeed(ctx)  # type: ignore[arg-type]
    event = RevocationEvent(issued_before=1.0, user_id="u", origin="Berlin", seq=1)
    revocations.add(event, local=True)  # a tool outside the site: no loop to push from
    assert revocations.holds("Berlin", 1)
    assert feed._tasks == set()


async def test_pruning_forgets_old_events_but_never_reuses_a_number(tmp_path: Path) -> None:
    now = [time.time()]
    settings = site_settings(tmp_path / "berlin", token_ttl_seconds=600)
    async with run_site(settings, clock=lambda: now[0]) as site:
        for _ in range(2):
            token = await site.token()
            r = await site.client.delete(
                "/identity/v3/auth/tokens",
                headers={"X-Auth-Token": token, "X-Subject-Token": token},
            )
            assert r.status_code == 204
        feed = feed_of(site)
        now[0] += 600 + 86400 + 3600 + 1  # past every token, the slack, and the period
        assert await feed.prune_if_due() == 2
        assert await feed.prune_if_due() == 0  # not due again for an hour
        assert ctx_of(site).revocations.digest() == {"Berlin": 2}
        # The store keeps the newest of each origin: the numbering goes on from it.
        assert [e.seq for e in await feed.repo.all_since(0.0)] == [2]
    async with run_site(settings, clock=lambda: now[0]) as site:
        token = await site.token()
        r = await site.client.delete(
            "/identity/v3/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token}
        )
        assert r.status_code == 204
        assert ctx_of(site).revocations.last_seq("Berlin") == 3
