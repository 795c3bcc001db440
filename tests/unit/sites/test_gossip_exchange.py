"""One gossip exchange, as a site sends it to a peer that answers whatever the test
says: what is sent, what an answer changes, which answers change nothing, the RTTs."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sites_kit import Member, enrolled_by, registry_of, revoked_by

from edgefed.core.revocation import RevocationEvent
from edgefed.core.sitesig import TARGET_HEADER
from edgefed.services.sites.gossip import (
    GOSSIP_PATH,
    MAX_FANOUT,
    exchange,
    gossip_round,
    pick_peers,
)
from edgefed.services.sites.registry import Registry
from edgefed.testkit.asgi_fleet import FleetTransport
from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings
from edgefed.testkit.inprocess_fleet import ctx_of

Handler = Callable[[httpx.Request], httpx.Response]


@dataclasses.dataclass
class Berlin:
    site: InProcessSite
    transport: FleetTransport

    @property
    def registry(self) -> Registry:
        return registry_of(self.site)

    async def peer(self, name: str, handler: Handler) -> Member:
        """A member of Berlin's fleet that answers with ``handler``."""
        member = Member(name)
        await self.registry.merge([enrolled_by(self.site, member)])
        self.transport.apps[f"{name.lower()}.test"] = httpx.MockTransport(handler)  # type: ignore[assignment]
        return member


@pytest.fixture
async def berlin(tmp_path: Path) -> AsyncIterator[Berlin]:
    transport = FleetTransport()
    settings = site_settings(tmp_path / "berlin", gossip_interval_seconds=3600.0)
    async with run_site(settings, transport=transport) as site:
        yield Berlin(site, transport)


class Recorder:
    """A peer's side: keeps each request's body, answers from a list (the last repeats)."""

    def __init__(self, *answers: httpx.Response) -> None:
        self.answers = list(answers)
        self.bodies: list[dict[str, Any]] = []
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.bodies.append(orjson.loads(request.content))
        return self.answers[min(len(self.bodies), len(self.answers)) - 1]


def answer(**body: Any) -> httpx.Response:
    return httpx.Response(200, json={"sites": [], "want": [], **body})


async def test_a_digest_request_is_signed_for_the_peer_and_describes_the_registry(
    berlin: Berlin,
) -> None:
    peer = Recorder(answer())
    paris = await berlin.peer("Paris", peer)
    assert await exchange(berlin.registry, berlin.registry.view.entries["Paris"], timeout=1.0)
    [request] = peer.requests
    assert request.url.path == GOSSIP_PATH
    assert request.headers[TARGET_HEADER] == "Paris"
    body = peer.bodies[0]
    assert set(body) == {"digest", "revocations", "rtt"}
    assert set(body["digest"]) == {"Berlin", "Paris"}
    assert body["digest"]["Paris"] == [1000.0, False, 1]
    assert paris.name == "Paris"


async def test_an_answer_in_agreement_costs_one_request_and_marks_the_site_caught_up(
    berlin: Berlin,
) -> None:
    peer = Recorder(answer(revocations={}))
    await berlin.peer("Paris", peer)
    revocations = ctx_of(berlin.site).revocations
    assert revocations.synced_age() is None
    assert await gossip_round(berlin.registry) == 1
    assert len(peer.requests) == 1
    assert revocations.synced_age() is not None


async def test_what_the_peer_wants_is_pushed_in_a_second_request(berlin: Berlin) -> None:
    peer = Recorder(answer(want=["Berlin", "Nowhere"], revocations={}), answer())
    await berlin.peer("Paris", peer)
    assert await gossip_round(berlin.registry) == 1
    push = peer.bodies[1]
    assert "digest" not in push
    assert [e["name"] for e in push["sites"]] == ["Berlin"]  # what it holds of the wanted
    assert push["revocation_events"] == []


async def test_the_revocation_events_a_peer_lacks_are_pushed_to_it(berlin: Berlin) -> None:
    token = await berlin.site.token()
    r = await berlin.site.client.delete(
        "/identity/v3/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token}
    )
    assert r.status_code == 204
    peer = Recorder(answer(revocations={"Berlin": 0}), answer())
    await berlin.peer("Paris", peer)
    await registry_of(berlin.site).feed.drain()  # the immediate push (it failed: no Paris yet)
    peer.requests.clear()
    peer.bodies.clear()
    assert await gossip_round(berlin.registry) == 1
    [event] = peer.bodies[1]["revocation_events"]
    assert (event["origin"], event["seq"]) == ("Berlin", 1)
    # A peer without a revocation digest (an older answer) is pushed no events.
    peer.answers = [answer(want=["Berlin"])]
    peer.bodies.clear()
    await gossip_round(berlin.registry)
    assert peer.bodies[1]["revocation_events"] == []


async def test_entries_an_answer_carries_are_merged(berlin: Berlin) -> None:
    lyon = Member("Lyon")
    lyon_entry = enrolled_by(berlin.site, lyon)
    await berlin.peer("Paris", Recorder(answer(sites=[lyon_entry.to_json()])))
    assert await gossip_round(berlin.registry) == 1
    assert berlin.registry.view.entries["Lyon"] == lyon_entry


@pytest.mark.parametrize(
    "reply",
    [
        httpx.Response(500, json={"error": "boom"}),
        httpx.Response(401, json={"error": {"message": "who?"}}),
        httpx.Response(200, content=b"not json"),
        httpx.Response(200, json=["a", "list"]),
        httpx.Response(200, json={"sites": "Lyon"}),
        httpx.Response(200, json={"sites": [{"name": "Lyon"}]}),
        httpx.Response(200, json={"sites": [], "revocations": {"Paris": -1}}),
        httpx.Response(200, json={"sites": [], "revocation_events": "all"}),
        httpx.Response(200, json={"sites": [], "rtt": {"Berlin": -5}}),
        httpx.Response(200, json={"sites": [], "rtt": ["Berlin", 5]}),
    ],
)
async def test_an_answer_that_is_not_a_proper_one_changes_nothing(
    berlin: Berlin, reply: httpx.Response
) -> None:
    await berlin.peer("Paris", Recorder(reply))
    before = dict(berlin.registry.view.entries)
    revocations = ctx_of(berlin.site).revocations
    assert await exchange(berlin.registry, before["Paris"], timeout=1.0) is False
    assert berlin.registry.view.entries == before
    assert revocations.synced_age() is None  # no exchange completed


async def test_a_forged_entry_in_an_answer_takes_nothing_of_it(berlin: Berlin) -> None:
    good = enrolled_by(berlin.site, Member("Lyon"))
    forged = dataclasses.replace(enrolled_by(berlin.site, Member("Nice")), signature=good.signature)
    await berlin.peer("Paris", Recorder(answer(sites=[good.to_json(), forged.to_json()])))
    assert await gossip_round(berlin.registry) == 0
    assert "Lyon" not in berlin.registry.view.entries


async def test_an_unreachable_peer_counts_as_a_failed_exchange(berlin: Berlin) -> None:
    await berlin.peer("Paris", Recorder(answer()))
    await berlin.peer("Nice", Recorder(answer()))
    berlin.transport.cut.add("nice.test")
    assert await gossip_round(berlin.registry) == 1
    assert "Paris" in berlin.registry.view.last_seen
    assert "Nice" not in berlin.registry.view.last_seen


async def test_each_exchange_measures_the_rtt_and_keeps_the_peers_row(berlin: Berlin) -> None:
    reply = answer(rtt={"Berlin": 12.5, "Paris": 0.0, "Unknown": 3.0})
    await berlin.peer("Paris", Recorder(reply))
    view = berlin.registry.view
    assert view.rtt_ms("Berlin", "Paris") is None
    assert await gossip_round(berlin.registry) == 1
    measured = view.rtt_ms("Berlin", "Paris")
    assert measured is not None and 0.0 < measured < 5000.0
    # Paris's row as it reported it, without the sites Berlin does not know.
    assert view.rtt["Paris"] == {"Berlin": 12.5, "Paris": 0.0}
    assert view.rtt_ms("Paris", "Berlin") == 12.5
    assert view.rtt_ms("Berlin", "Berlin") == 0.0
    # Berlin's next request carries its own row.
    peer = Recorder(answer())
    berlin.transport.apps["paris.test"] = httpx.MockTransport(peer)  # type: ignore[assignment]
    await gossip_round(berlin.registry)
    assert peer.bodies[0]["rtt"] == {"Paris": pytest.approx(measured, abs=1e4)}


async def test_peers_are_the_active_members_but_this_site_at_most_a_few(
    berlin: Berlin,
) -> None:
    for name in ("Lyon", "Nice", "Oslo", "Rome", "Kiev"):
        await berlin.peer(name, Recorder(answer()))
    kiev = berlin.registry.view.entries["Kiev"]
    await berlin.registry.merge([revoked_by(berlin.site, kiev)])
    seen: set[str] = set()
    for _ in range(30):
        picked = [e.name for e in pick_peers(berlin.registry)]
        assert len(picked) == MAX_FANOUT == len(set(picked))
        seen.update(picked)
    assert seen == {"Lyon", "Nice", "Oslo", "Rome"}  # random, never Berlin or Kiev
    # A revoked peer is not asked, even when it is one of few.
    assert all(e.name != "Kiev" for e in pick_peers(berlin.registry))


async def test_a_small_fleet_gossips_with_every_peer(berlin: Berlin) -> None:
    assert pick_peers(berlin.registry) == []  # alone
    assert await gossip_round(berlin.registry) == 0
    await berlin.peer("Lyon", Recorder(answer()))
    assert [e.name for e in pick_peers(berlin.registry)] == ["Lyon"]


async def test_revocation_events_from_an_answer_are_verified_and_kept(berlin: Berlin) -> None:
    paris_key: list[Any] = []

    def reply(request: httpx.Request) -> httpx.Response:
        event = RevocationEvent(
            issued_before=1.0, audit_id="gone", origin="Paris", seq=1, created_at=1.0
        ).signed_by(paris_key[0])
        return answer(revocation_events=[event.to_json()], revocations={"Paris": 1})

    paris = await berlin.peer("Paris", reply)
    paris_key.append(paris.key)
    assert await gossip_round(berlin.registry) == 1
    revocations = ctx_of(berlin.site).revocations
    assert revocations.holds("Paris", 1) and revocations.digest()["Paris"] == 1
