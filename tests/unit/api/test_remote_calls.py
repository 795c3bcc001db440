"""Service-to-service calls that follow a request's scope, and downloads from another
site that resume after a cut: through the one inter-site client, its transport swapped
for a fake network."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from edgefed.api.remote import (
    FORWARDED_HEADER,
    RemoteAnswer,
    ask_scope,
    describe_http_error,
    download,
    scope_entry,
)
from edgefed.core.errors import BadRequest, Unavailable
from edgefed.core.scope import parse_expr, parse_scope
from edgefed.testkit.fleet_views import fleet_view

Handler = Callable[[httpx.Request], httpx.Response]


def context(handler: Handler, *, sites: tuple[str, ...] = ("Berlin", "Paris", "Rome")) -> Any:
    fleet = fleet_view("Berlin", sites)
    ctx = SimpleNamespace(
        name="Berlin",
        fleet=fleet,
        http=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )
    ctx.fleet_sites = lambda: {"Berlin": "http://berlin.test", **fleet.peers}
    return ctx


def by_host(answers: dict[str, Any]) -> tuple[Handler, list[httpx.Request]]:
    """Each host answers its status (or raises); every request is kept."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers[request.url.host]
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer, json={"site": request.url.host})

    return handle, seen


async def test_the_first_site_that_answers_wins_and_the_token_travels() -> None:
    handler, seen = by_host({"paris.test": 503, "rome.test": 200})
    ctx = context(handler)
    winner, answers = await ask_scope(
        ctx, parse_expr("Paris|Rome"), "GET", "/image/v2/images/i1", token="tok"
    )
    assert winner is not None and winner.site == "Rome"
    assert winner.json() == {"site": "rome.test"}
    assert [(a.site, a.status) for a in answers] == [("Paris", 503), ("Rome", 200)]
    for request in seen:
        assert request.headers["x-auth-token"] == "tok"
        assert request.headers[FORWARDED_HEADER] == "Berlin"


async def test_no_winner_when_every_site_fails_with_the_reason_of_each() -> None:
    handler, _ = by_host({"paris.test": httpx.ConnectError("refused"), "rome.test": 404})
    ctx = context(handler)
    winner, answers = await ask_scope(ctx, parse_expr("Paris|Rome"), "GET", "/x", token="t")
    assert winner is None
    paris, rome = answers
    assert paris.status == 503 and "no answer" in paris.reason() and not paris.ok
    assert rome.reason().startswith("404 ")


async def test_a_site_known_offline_or_unknown_is_not_asked() -> None:
    handler, seen = by_host({"rome.test": 200})
    ctx = context(handler)
    ctx.fleet.down["Paris"] = "no answer for 9 s"
    winner, answers = await ask_scope(ctx, parse_expr("Paris|Rome"), "GET", "/x", token="t")
    assert winner is not None and winner.site == "Rome"
    assert answers[0].error == "offline (no answer for 9 s)"
    assert [r.url.host for r in seen] == ["rome.test"]


async def test_this_site_is_skipped_unless_asked_for() -> None:
    handler, seen = by_host({"berlin.test": 200, "paris.test": 200})
    ctx = context(handler)
    winner, _ = await ask_scope(ctx, parse_expr("Berlin|Paris"), "GET", "/x", token="t")
    assert winner is not None and winner.site == "Paris"
    winner, _ = await ask_scope(
        ctx, parse_expr("Berlin|Paris"), "GET", "/x", token="t", skip_self=False
    )
    assert winner is not None and winner.site == "Berlin"
    assert [r.url.host for r in seen] == ["paris.test", "berlin.test"]


async def test_a_site_without_a_registry_cannot_follow_a_scope() -> None:
    handler, _ = by_host({})
    ctx = context(handler)
    ctx.fleet = None
    with pytest.raises(BadRequest, match="no fleet registry"):
        await ask_scope(ctx, parse_expr("Paris"), "GET", "/x", token="t")


def test_the_scope_entry_of_a_service_comes_from_the_request() -> None:
    scope = parse_scope("{compute: Berlin, image: Paris|Rome}")
    asgi = {"edgefed.scope": scope}
    assert scope_entry(asgi, "image") == scope["image"]
    assert scope_entry(asgi, "network") is None
    assert scope_entry({}, "image") is None
    assert scope_entry({"edgefed.scope": "image: Paris"}, "image") is None


def test_http_errors_are_described_for_people() -> None:
    assert describe_http_error(httpx.ReadTimeout("x")) == "timed out"
    assert describe_http_error(httpx.ConnectError("refused")) == "refused"
    assert describe_http_error(httpx.ConnectError("")) == "ConnectError"
    answer = RemoteAnswer(site="Paris", status=500, body=b"x" * 500)
    assert answer.reason() == "500 " + "x" * 200


# ---- downloads -----------------------------------------------------------------------------

DATA = bytes(range(256)) * 400  # 100 KiB


class Flaky:
    """Serves DATA, honouring Range; the first answers break after ``cut_at`` bytes."""

    def __init__(self, *, cuts: int = 1, cut_at: int = 30_000, honour_range: bool = True) -> None:
        self.cuts = cuts
        self.cut_at = cut_at
        self.honour_range = honour_range
        self.ranges: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        header = request.headers.get("range")
        self.ranges.append(header)
        start = int(header.removeprefix("bytes=").rstrip("-")) if header else 0
        if not self.honour_range:
            start = 0
        body = DATA[start:]
        status = 206 if start else 200
        if self.cuts:
            self.cuts -= 1
            return httpx.Response(status, stream=Broken(body[: self.cut_at]))
        return httpx.Response(status, content=body)


class Broken(httpx.AsyncByteStream):
    def __init__(self, head: bytes) -> None:
        self.head = head

    async def __aiter__(self) -> Any:
        yield self.head
        raise httpx.ReadError("link cut")


async def test_a_download_resumes_where_the_cut_left_it(tmp_path: Path) -> None:
    server = Flaky(cuts=2)
    ctx = context(server)
    target = tmp_path / "blobs" / "i1"
    digest = await download(
        ctx, "Paris", "/image/v2/images/i1/file", target, token="t", expected_size=len(DATA)
    )
    assert target.read_bytes() == DATA
    assert digest == hashlib.sha512(DATA).hexdigest()
    assert server.ranges == [None, "bytes=30000-", "bytes=60000-"]


async def test_a_server_that_ignores_the_range_is_read_again_from_the_start(
    tmp_path: Path,
) -> None:
    server = Flaky(cuts=1, honour_range=False)
    target = tmp_path / "i1"
    await download(context(server), "Paris", "/f", target, token="t", expected_size=len(DATA))
    assert target.read_bytes() == DATA


async def test_a_download_gives_up_after_its_attempts(tmp_path: Path) -> None:
    server = Flaky(cuts=99, cut_at=10)
    with pytest.raises(Unavailable, match="download of /f from Paris failed"):
        await download(context(server), "Paris", "/f", tmp_path / "i1", token="t")
    assert len(server.ranges) == 5


@pytest.mark.parametrize(
    ("handler", "message"),
    [
        (lambda r: httpx.Response(404, text="no"), "Paris answered 404 for /f"),
        (lambda r: httpx.Response(200, content=DATA[:10]), "sent 10 bytes of /f, expected"),
    ],
)
async def test_a_download_that_is_not_the_file_is_refused(
    tmp_path: Path, handler: Handler, message: str
) -> None:
    with pytest.raises(Unavailable, match=message):
        await download(
            context(handler), "Paris", "/f", tmp_path / "i1", token="t", expected_size=len(DATA)
        )


async def test_a_download_from_a_site_not_in_the_registry_is_refused(tmp_path: Path) -> None:
    handler, seen = by_host({})
    with pytest.raises(Unavailable, match="Atlantis is not in the fleet registry"):
        await download(context(handler), "Atlantis", "/f", tmp_path / "i1", token="t")
    assert seen == []
