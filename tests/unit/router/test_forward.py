"""Forwarding to one other site: the body streamed as it arrives and the answer passed
back chunk by chunk with the answering site named; a site unknown, offline or silent
is a fault in the service's own shape. A fan-out leg reads the answer whole,
content-decoded. The other site is an httpx ``MockTransport``."""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import httpx
from starlette.types import Message

from edgefed.router.forward import read_decoded, remote_answer, stream_to

Handler = Callable[[httpx.Request], httpx.Response]


class Chunks(httpx.AsyncByteStream):
    """An answer that arrives in pieces, as a real transport's does."""

    def __init__(self, *pieces: bytes):
        self.pieces = pieces

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece


def context(handler: Any, *, down: dict[str, str] | None = None) -> Any:
    return SimpleNamespace(
        name="Berlin",
        peers={"Denver": "http://denver.test"},
        fleet=SimpleNamespace(down=down or {}),
        settings=SimpleNamespace(scope_call_timeout_seconds=5.0),
        peer_transport=None,
        http=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )


def request_scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
    }


class Exchange:
    """The client's side of one forwarded request: what it sends, what it gets."""

    def __init__(self, *body: bytes) -> None:
        self.incoming: list[Message] = [
            {"type": "http.request", "body": b, "more_body": i < len(body) - 1}
            for i, b in enumerate(body)
        ] or [{"type": "http.request", "body": b"", "more_body": False}]
        self.sent: list[Message] = []

    async def receive(self) -> Message:
        return self.incoming.pop(0)

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.sent[0]["headers"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:])

    def fault(self) -> str:
        return json.dumps(json.loads(self.body))


async def forward(
    ctx: Any, exchange: Exchange, method: str = "GET", path: str = "/image/v2/images", **kw: Any
) -> None:
    headers = kw.get("headers", [(b"x-auth-token", b"t")])
    await stream_to(ctx, kw.get("site", "Denver"), request_scope(method, path, headers),
                    exchange.receive, exchange.send)  # fmt: skip


async def test_an_upload_is_streamed_and_the_answer_passed_back_in_pieces() -> None:
    got: list[httpx.Request] = []

    async def body_of(request: httpx.Request) -> bytes:
        return b"".join([piece async for piece in request.stream])  # type: ignore[union-attr]

    received: list[bytes] = []

    async def denver(request: httpx.Request) -> httpx.Response:
        got.append(request)
        received.append(await body_of(request))
        return httpx.Response(
            201,
            headers={"Content-Type": "application/json", "Connection": "close"},
            stream=Chunks(b'{"image":', b' {"id": "d1"}}'),
        )

    exchange = Exchange(b"part-1;", b"part-2")
    headers = [(b"x-auth-token", b"t"), (b"content-type", b"application/octet-stream")]
    await forward(context(denver), exchange, "PUT", "/image/v2/images/d1/file", headers=headers)

    assert received == [b"part-1;part-2"]
    (sent,) = got
    assert sent.headers["x-edgefed-forwarded"] == "Berlin"
    assert exchange.status == 201
    assert exchange.headers[b"x-edgefed-site"] == b"Denver"
    assert b"connection" not in exchange.headers  # hop-by-hop stays behind
    assert json.loads(exchange.body) == {"image": {"id": "d1"}}
    assert len(exchange.sent) == 4  # start, two pieces, the end
    assert exchange.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


async def test_a_read_sends_no_body_and_keeps_the_length() -> None:
    bodies: list[bytes] = []

    def denver(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        doc = b'{"images": []}'
        return httpx.Response(200, headers={"Content-Length": "14"}, stream=Chunks(doc))

    exchange = Exchange()
    await forward(context(denver), exchange)
    assert bodies == [b""]
    assert exchange.status == 200
    assert exchange.headers[b"content-length"] == b"14"
    assert exchange.body == b'{"images": []}'


async def test_a_site_not_reachable_from_here_is_a_400_in_the_services_shape() -> None:
    exchange = Exchange()
    await forward(context(lambda r: httpx.Response(200)), exchange, site="Tokyo")
    assert exchange.status == 400
    assert "site Tokyo is not reachable from here" in exchange.fault()


async def test_an_offline_site_is_a_503_saying_why_without_trying_it() -> None:
    called: list[httpx.Request] = []

    def denver(request: httpx.Request) -> httpx.Response:
        called.append(request)
        return httpx.Response(200)

    exchange = Exchange()
    await forward(context(denver, down={"Denver": "no heartbeat for 90 s"}), exchange,
                  path="/compute/v2.1/servers")  # fmt: skip
    assert exchange.status == 503
    assert "site Denver is offline: no heartbeat for 90 s" in exchange.fault()
    assert called == []


async def test_a_site_that_does_not_answer_is_a_503() -> None:
    def cut(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("read", request=request)

    for handler, says in ((cut, "connection refused"), (slow, "timed out")):
        exchange = Exchange()
        await forward(context(handler), exchange)
        assert exchange.status == 503
        assert f"site Denver did not answer: {says}" in exchange.fault()


async def test_a_fan_out_leg_reads_the_whole_answer() -> None:
    def denver(request: httpx.Request) -> httpx.Response:
        assert request.content == b'{"x": 1}'
        return httpx.Response(207, headers={"X-Request-Id": "r1"}, stream=Chunks(b'{"a"', b": 1}"))

    scope = request_scope("POST", "/compute/v2.1/servers", [])
    answer = await remote_answer(context(denver), "Denver", scope, b'{"x": 1}', [])
    assert (answer.site, answer.status, answer.body) == ("Denver", 207, b'{"a": 1}')
    assert (b"x-request-id", b"r1") in answer.headers
    assert answer.error is None


async def test_a_fan_out_leg_without_an_answer_says_why() -> None:
    def cut(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("the link is cut", request=request)

    scope = request_scope("GET", "/image/v2/images", [])
    unknown = await remote_answer(context(cut), "Tokyo", scope, b"", [])
    assert (unknown.status, unknown.error) == (503, "site Tokyo is not reachable from here")
    silent = await remote_answer(context(cut), "Denver", scope, b"", [])
    assert (silent.status, silent.error) == (503, "no answer: the link is cut")
    assert not silent.ok


async def test_a_compressed_answer_is_decoded_and_loses_its_encoding() -> None:
    doc = json.dumps({"images": [{"id": "x"}] * 50}).encode()

    def denver(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
            content=gzip.compress(doc),
        )

    scope = request_scope("GET", "/image/v2/images", [])
    answer = await remote_answer(context(denver), "Denver", scope, b"", [])
    assert answer.body == doc
    assert b"content-encoding" not in dict(answer.headers)
    assert answer.json() == json.loads(doc)


async def test_an_uncompressed_answer_is_read_off_its_stream() -> None:
    response = httpx.Response(200, stream=Chunks(b"a", b"b", b"c"))
    assert await read_decoded(response) == b"abc"
