"""Registering with a source and leaving it, as an operator of the receiving site does,
with the source played by the test (an httpx ``MockTransport`` in place of the site's
inter-site client): the source's 201 starts receiving at once, its 202 waits for its
operator, a refusal or a source out of reach is a 503 that leaves no registration
behind; leaving tells an active source, and forgets a gone one without asking it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from edgefed.core.ed25519 import Ed25519PrivateKey
from edgefed.core.fleet import Revocation, SiteEntry
from edgefed.core.tokens import public_key_b64
from edgefed.sync.operator_routes import SYNC_CAPABILITY
from edgefed.testkit.inprocess import InProcessSite

SYNC = "/edge/v1/sync"
Answer = Callable[[httpx.Request], httpx.Response]


class Central:
    """The source: what Berlin asked of it, and how it answers."""

    def __init__(self) -> None:
        self.answer: Answer = lambda request: httpx.Response(201, json={})
        self.asked: list[tuple[str, str, str]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != "central.test":  # the site's own loops, elsewhere
            return httpx.Response(404)
        self.asked.append((request.method, request.url.path, request.headers["x-edgefed-site"]))
        return self.answer(request)


@pytest.fixture
async def central(site: InProcessSite) -> AsyncIterator[Central]:
    """Central, an active member of Berlin's fleet that offers sync, answering Berlin."""
    ctx = site.app.state.ctx
    key = public_key_b64(Ed25519PrivateKey.generate().public_key())
    ctx.fleet.apply([SiteEntry(name="Central", endpoint="http://central.test", public_key=key,
                               capabilities=(SYNC_CAPABILITY,))])  # fmt: skip
    source = Central()
    original = ctx.http
    ctx.http = httpx.AsyncClient(transport=httpx.MockTransport(source.handle))
    try:
        yield source
    finally:
        await ctx.http.aclose()
        ctx.http = original


async def register(site: InProcessSite, headers: dict[str, str]) -> httpx.Response:
    body = {"registration": {"source": "Central"}}
    return await site.client.post(f"{SYNC}/registrations", json=body, headers=headers)


def answering(status: int, state: str, *, queued: int = 0) -> Answer:
    """Central's answer to a registration."""
    body = {"registration": {"state": state, "queued": queued}}
    return lambda request: httpx.Response(status, json=body)


async def sources(site: InProcessSite, headers: dict[str, str]) -> list[str]:
    r = await site.client.get(f"{SYNC}/registrations", headers=headers)
    return list(r.json()["sources"])


async def test_an_accepting_source_starts_the_first_sync(
    site: InProcessSite, admin_headers: dict[str, str], central: Central
) -> None:
    central.answer = answering(201, "accepted", queued=12)
    r = await register(site, admin_headers)
    assert r.status_code == 201, r.text
    assert r.json()["registration"] == {
        "source": "Central", "receiver": "Berlin", "status": "active", "queued": 12
    }  # fmt: skip
    assert central.asked == [("POST", f"{SYNC}/receivers", "Berlin")]  # signed as Berlin
    assert await sources(site, admin_headers) == ["Central"]


async def test_a_source_whose_operator_must_accept_says_how(
    site: InProcessSite, admin_headers: dict[str, str], central: Central
) -> None:
    central.answer = answering(202, "pending")
    r = await register(site, admin_headers)
    assert r.status_code == 201, r.text
    registration = r.json()["registration"]
    assert (registration["status"], registration["queued"]) == ("pending", 0)
    assert "'edgefed sync accept Berlin'" in registration["message"]
    # Ready for the pushes that follow the source operator's accept.
    assert await sources(site, admin_headers) == ["Central"]


def refusing(request: httpx.Request) -> httpx.Response:
    return httpx.Response(403, json={"error": {"message": "no"}})


def unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


def slow(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("no answer", request=request)


@pytest.mark.parametrize(
    ("answer", "says", "left"),
    [
        (refusing, "site Central refused the registration (403)", []),
        (unreachable, "site Central could not be reached to register", []),
        # Central may have recorded Berlin and started pushing: Berlin takes what comes.
        (slow, "site Central could not be reached to register", ["Central"]),
    ],
)
async def test_a_failed_registration_leaves_a_source_only_if_it_may_push(
    site: InProcessSite,
    admin_headers: dict[str, str],
    central: Central,
    answer: Answer,
    says: str,
    left: list[str],
) -> None:
    central.answer = answer
    r = await register(site, admin_headers)
    assert r.status_code == 503
    assert says in r.json()["error"]["message"]
    assert await sources(site, admin_headers) == left


async def test_a_failed_attempt_keeps_an_earlier_registration(
    site: InProcessSite, admin_headers: dict[str, str], central: Central
) -> None:
    assert (await register(site, admin_headers)).status_code == 201
    central.answer = lambda request: httpx.Response(500)
    assert (await register(site, admin_headers)).status_code == 503
    assert await sources(site, admin_headers) == ["Central"]  # still receiving


async def test_a_site_without_sync_is_no_source(
    site: InProcessSite, admin_headers: dict[str, str], central: Central
) -> None:
    ctx = site.app.state.ctx
    entry = ctx.fleet.entries["Central"]
    ctx.fleet.apply([SiteEntry(name="Central", endpoint=entry.endpoint,
                               public_key=entry.public_key)])  # fmt: skip
    r = await register(site, admin_headers)
    assert r.status_code == 409
    assert "does not advertise the 'sync' capability" in r.json()["error"]["message"]
    assert central.asked == []


async def test_leaving_tells_the_source_and_stops_receiving(
    site: InProcessSite, admin_headers: dict[str, str], central: Central
) -> None:
    assert (await register(site, admin_headers)).status_code == 201
    central.answer = lambda request: httpx.Response(503)
    r = await site.client.delete(f"{SYNC}/registrations/Central", headers=admin_headers)
    assert r.status_code == 503  # the source could not forget Berlin: nothing changes
    assert "site Central refused to unregister (503)" in r.json()["error"]["message"]
    assert await sources(site, admin_headers) == ["Central"]

    central.answer = lambda request: httpx.Response(404)  # it had already forgotten Berlin
    r = await site.client.delete(f"{SYNC}/registrations/Central", headers=admin_headers)
    assert r.status_code == 204, r.text
    assert central.asked[-1] == ("DELETE", f"{SYNC}/receivers", "Berlin")
    assert await sources(site, admin_headers) == []


async def test_leaving_a_source_gone_from_the_fleet_asks_nothing_of_it(
    site: InProcessSite, admin_headers: dict[str, str], central: Central
) -> None:
    assert (await register(site, admin_headers)).status_code == 201
    ctx = site.app.state.ctx
    entry = ctx.fleet.entries["Central"]
    ctx.fleet.apply([dataclasses.replace(entry, revocation=Revocation(by="Berlin", at=1.0))])
    asked = len(central.asked)
    r = await site.client.delete(f"{SYNC}/registrations/Central", headers=admin_headers)
    assert r.status_code == 204, r.text
    assert len(central.asked) == asked
    assert await sources(site, admin_headers) == []
