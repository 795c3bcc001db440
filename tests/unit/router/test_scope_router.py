"""``ScopeRouter`` alone: a stub local app behind it, the other sites an httpx
``MockTransport``. One hop, ``|`` fallback, ``&`` merge, writes everywhere or a listed
failure, and the refusals that happen before anything is sent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Send
from starlette.types import Scope as AsgiScope

from edgefed.api.remote import SCOPE_KEY
from edgefed.core.errors import Unauthorized
from edgefed.core.scope_resolve import StaticFleetView
from edgefed.router.middleware import ScopeRouter

SITES = ("Berlin", "Denver", "Paris")
Handler = Callable[[httpx.Request], httpx.Response]


@dataclass(frozen=True)
class Fleet(StaticFleetView):
    """The registry's view as the router reads it: sites, and those found offline."""

    down: dict[str, str] = field(default_factory=dict)


@dataclass
class Peers:
    """The other sites: an answer per site name, and every request they got."""

    answers: dict[str, Handler] = field(default_factory=dict)
    seen: list[tuple[str, httpx.Request]] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        site = request.url.host.split(".")[0].capitalize()
        self.seen.append((site, request))
        return self.answers[site](request)

    def sites_called(self) -> list[str]:
        return [site for site, _ in self.seen]


class Streamed(httpx.AsyncByteStream):
    """A body that arrives as a stream, as a real transport's does."""

    def __init__(self, data: bytes):
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data


def answer(status: int, body: Any) -> Handler:
    data = json.dumps(body).encode()
    headers = {"content-type": "application/json", "content-length": str(len(data))}
    return lambda _request: httpx.Response(status, headers=headers, stream=Streamed(data))


def cut(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("the link is cut", request=request)


async def local_app(scope: AsgiScope, receive: Receive, send: Send) -> None:
    """Berlin's own services: a collection, or 201 for a write; what they received is
    echoed in headers."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    received = {k.decode(): v.decode() for k, v in scope["headers"]}
    write = scope["method"] == "POST"
    doc = {"image": {"id": "b-new"}} if write else {"images": [{"id": "b1"}]}
    headers = [
        (b"content-type", b"application/json"),
        (b"x-local", b"yes"),
        (b"x-local-forwarded", received.get("x-edgefed-forwarded", "-").encode()),
        (b"x-local-scope", str(scope.get(SCOPE_KEY)).encode()),
        (b"x-local-body", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": 201 if write else 200, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(doc).encode()})


@asynccontextmanager
async def berlin(
    tmp_path: Any, peers: Peers, *, refuse_token: bool = False, max_buffer: int = 1 << 20
) -> AsyncIterator[tuple[httpx.AsyncClient, SimpleNamespace]]:
    """A client of Berlin's router, and Berlin's context."""
    http = httpx.AsyncClient(transport=httpx.MockTransport(peers.handle))

    def verify(_ctx: Any, token: str) -> None:
        if refuse_token:
            raise Unauthorized("The token was revoked here.")

    ctx = SimpleNamespace(
        name="Berlin",
        fleet=Fleet(sites=SITES),
        peers={s: f"http://{s.lower()}.test" for s in SITES if s != "Berlin"},
        settings=SimpleNamespace(scope_call_timeout_seconds=5.0),
        peer_transport=None,
        http=http,
    )
    holder = SimpleNamespace(
        state=SimpleNamespace(ctx=ctx, authenticator=SimpleNamespace(verify=verify))
    )
    router = ScopeRouter(local_app, max_buffer=max_buffer)

    async def app(scope: AsgiScope, receive: Receive, send: Send) -> None:
        scope["app"] = holder  # as Starlette sets it
        await router(scope, receive, send)

    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://berlin.test"
    )
    try:
        yield client, ctx
    finally:
        await client.aclose()
        await http.aclose()


def scoped(scope: str, **extra: str) -> dict[str, str]:
    return {"X-Scope": scope, "X-Auth-Token": "t", **extra}


async def test_without_a_scope_entry_for_the_service_berlin_serves_it(tmp_path: Any) -> None:
    peers = Peers()
    async with berlin(tmp_path, peers) as (client, _):
        r = await client.get("/image/v2/images", headers=scoped("{compute: Denver}"))
        assert r.status_code == 200 and r.headers["x-local-forwarded"] == "-"
        assert r.headers["x-local-scope"] == "{compute: Denver}"  # left for the services
        r = await client.get("/image/v2/images", headers=scoped("{image: Berlin}"))
        assert r.status_code == 200 and r.headers["x-local"] == "yes"
    assert peers.seen == []


async def test_one_other_site_is_one_hop_with_end_to_end_headers_only(tmp_path: Any) -> None:
    peers = Peers({"Denver": answer(200, {"image": {"id": "d1"}})})
    async with berlin(tmp_path, peers) as (client, _):
        r = await client.get(
            "/image/v2/images/d1?x=1",
            headers=scoped("{image: Denver}", **{"Proxy-Authorization": "p", "X-Trace": "7"}),
        )
    assert (r.status_code, r.json(), r.headers["x-edgefed-site"]) == (
        200, {"image": {"id": "d1"}}, "Denver",
    )  # fmt: skip
    ((site, sent),) = peers.seen
    assert site == "Denver" and sent.url.raw_path == b"/image/v2/images/d1?x=1"
    assert sent.headers["x-edgefed-forwarded"] == "Berlin"  # Denver serves it itself
    assert sent.headers["x-scope"] == "{image: Denver}"  # for Denver's own calls
    assert sent.headers["x-trace"] == "7" and "proxy-authorization" not in sent.headers


async def test_a_forwarded_request_is_served_here_whatever_its_scope(tmp_path: Any) -> None:
    peers = Peers()
    async with berlin(tmp_path, peers) as (client, _):
        r = await client.get(
            "/image/v2/images",
            headers=scoped("{image: Denver}", **{"X-Edgefed-Forwarded": "Paris"}),
        )
    assert r.status_code == 200 and r.headers["x-local-forwarded"] == "Paris"
    assert peers.seen == []  # no loop back out


async def test_fallback_moves_on_for_errors_and_404_and_stops_at_a_success(
    tmp_path: Any,
) -> None:
    peers = Peers({"Denver": cut, "Paris": answer(200, {"image": {"id": "p1"}})})
    async with berlin(tmp_path, peers) as (client, _):
        r = await client.get("/image/v2/images/p1", headers=scoped("{image: Denver|Paris}"))
        assert r.status_code == 200 and r.json()["image"]["id"] == "p1"
        assert peers.sites_called() == ["Denver", "Paris"]
        for first in (answer(404, {"itemNotFound": {}}), answer(503, {"error": "busy"})):
            peers.answers["Denver"], peers.seen = first, []
            r = await client.get("/image/v2/images/p1", headers=scoped("{image: Denver|Paris}"))
            assert r.status_code == 200 and peers.sites_called() == ["Denver", "Paris"]
        peers.answers["Denver"], peers.seen = answer(200, {"image": {"id": "d"}}), []
        r = await client.get("/image/v2/images/p1", headers=scoped("{image: Denver|Paris}"))
        assert r.json()["image"]["id"] == "d" and peers.sites_called() == ["Denver"]


async def test_a_4xx_other_than_404_is_an_answer_not_a_reason_to_fall_back(
    tmp_path: Any,
) -> None:
    peers = Peers({"Denver": answer(403, {"forbidden": {}}), "Paris": answer(200, {})})
    async with berlin(tmp_path, peers) as (client, _):
        r = await client.get("/image/v2/images/x", headers=scoped("{image: Denver|Paris}"))
    assert r.status_code == 403 and peers.sites_called() == ["Denver"]


async def test_every_alternative_failing_names_each_site(tmp_path: Any) -> None:
    peers = Peers({"Denver": cut, "Paris": answer(500, {"error": "boom"})})
    async with berlin(tmp_path, peers) as (client, _):
        r = await client.get("/image/v2/images/x", headers=scoped("{image: Denver|Paris}"))
    assert r.status_code >= 500
    message = r.json()["message"]
    assert "Denver" in message and "cut" in message and "Paris" in message
    assert r.headers["x-edgefed-site"] == "Denver,Paris"


async def test_a_read_of_every_site_merges_and_tags_the_collections(tmp_path: Any) -> None:
    peers = Peers({"Denver": answer(200, {"images": [{"id": "d1"}]}),
                   "Paris": answer(200, {"images": [{"id": "p1"}, {"id": "p2"}]})})  # fmt: skip
    async with berlin(tmp_path, peers) as (client, _):
        r = await client.get("/image/v2/images", headers=scoped("{image: *}"))
    assert r.status_code == 200
    tagged = [(i["id"], i["os-scope:site"]) for i in r.json()["images"]]
    assert tagged == [("b1", "Berlin"), ("d1", "Denver"), ("p1", "Paris"), ("p2", "Paris")]
    assert r.headers["x-edgefed-site"] == "Berlin,Denver,Paris"
    assert int(r.headers["content-length"]) == len(r.content)


async def test_a_read_where_some_sites_lack_the_resource_returns_the_others(
    tmp_path: Any,
) -> None:
    peers = Peers({"Denver": answer(404, {"itemNotFound": {"message": "no"}}),
                   "Paris": answer(200, {"images": [{"id": "p1"}]})})  # fmt: skip
    async with berlin(tmp_path, peers) as (client, _):
        r = await client.get("/image/v2/images", headers=scoped("{image: Denver&Paris}"))
        assert r.status_code == 200 and [i["id"] for i in r.json()["images"]] == ["p1"]
        peers.answers["Paris"] = answer(500, {"error": "down"})
        r = await client.get("/image/v2/images", headers=scoped("{image: Denver&Paris}"))
    # A failure is not a missing resource: no silent gap, every site's status listed.
    assert r.status_code != 200
    statuses = {x["site"]: x["status"] for x in r.json()["os-scope:results"]}
    assert statuses == {"Denver": 404, "Paris": 500}


async def test_a_write_succeeds_everywhere_or_lists_every_site(tmp_path: Any) -> None:
    created = answer(201, {"image": {"id": "new"}})
    peers = Peers({"Denver": created, "Paris": created})
    async with berlin(tmp_path, peers) as (client, _):
        r = await client.post(
            "/image/v2/images", json={"name": "x"}, headers=scoped("{image: Berlin&Denver&Paris}")
        )
        assert r.status_code == 201, r.text
        assert [s for s, _ in peers.seen] == ["Denver", "Paris"]
        assert all(req.content == b'{"name":"x"}' for _, req in peers.seen)  # the same body
        statuses = {x["site"]: x["status"] for x in r.json()["os-scope:results"]}
        assert statuses == {"Berlin": 201, "Denver": 201, "Paris": 201}

        peers.answers["Paris"] = cut
        r = await client.post(
            "/image/v2/images", json={"name": "y"}, headers=scoped("{image: Berlin&Denver&Paris}")
        )
    assert r.status_code >= 500
    results = {x["site"]: x for x in r.json()["os-scope:results"]}
    assert results["Berlin"]["status"] == 201 and results["Denver"]["status"] == 201
    assert "error" in results["Paris"]
    assert "succeeded at the others" in r.json()["message"]


async def test_refusals_come_before_anything_is_sent(tmp_path: Any) -> None:
    peers = Peers({"Denver": answer(200, {})})
    async with berlin(tmp_path, peers) as (client, ctx):
        r = await client.get("/image/v2/images", headers=scoped("{image: Denver&&Paris}"))
        assert r.status_code == 400 and "position 15" in r.json()["message"]
        r = await client.get("/image/v2/images", headers=scoped("{image: Tokio}"))
        assert r.status_code == 400 and "Tokio" in r.json()["message"]
        ctx.fleet.down["Denver"] = "no heartbeat for 30 s"
        r = await client.get("/image/v2/images", headers=scoped("{image: Denver}"))
        assert r.status_code == 503 and "offline: no heartbeat" in r.json()["message"]
    assert peers.seen == []


async def test_a_token_refused_here_is_not_sent_to_other_sites(tmp_path: Any) -> None:
    peers = Peers({"Denver": answer(200, {})})
    async with berlin(tmp_path, peers, refuse_token=True) as (client, _):
        r = await client.get("/image/v2/images", headers=scoped("{image: Denver}"))
        assert r.status_code == 401 and "revoked" in r.text
        r = await client.get("/image/v2/images", headers=scoped("{image: Berlin}"))
        assert r.status_code == 200  # served here: the services judge the token themselves
    assert peers.seen == []


async def test_a_fan_out_body_is_bounded(tmp_path: Any) -> None:
    peers = Peers({"Denver": answer(201, {})})
    async with berlin(tmp_path, peers, max_buffer=1000) as (client, _):
        r = await client.post(
            "/image/v2/images", content=b"x" * 1001, headers=scoped("{image: Berlin&Denver}")
        )
    assert r.status_code == 413 and peers.seen == []


@pytest.mark.parametrize(
    ("path", "scope"),
    [("/compute/v2.1/servers", "{nova: Denver}"), ("/edge/v1/alarms", "{edge: Denver}"),
     ("/identity/v3/projects", "{keystone: Denver}"), ("/network/v2.0/ports", "{neutron: Denver}")],
)  # fmt: skip
async def test_a_service_named_by_its_alias_is_routed(tmp_path: Any, path: str, scope: str) -> None:
    peers = Peers({"Denver": answer(200, {})})
    async with berlin(tmp_path, peers) as (client, _):
        r = await client.get(path, headers=scoped(scope))
        assert r.status_code == 200 and peers.sites_called() == ["Denver"]
        r = await client.get("/image/v2/images", headers=scoped(scope))  # another service
        assert r.headers.get("x-local") == "yes" and peers.sites_called() == ["Denver"]


def test_a_service_is_known_by_its_whole_path_prefix() -> None:
    from edgefed.router.wire import service_of

    assert [service_of(p) for p in ("/compute", "/compute/v2.1", "/edge/v1/x", "/image")] == [
        "compute", "compute", "fleet", "image",
    ]  # fmt: skip
    assert [service_of(p) for p in ("/computer", "/edges", "/", "/identityx/v3")] == [None] * 4
