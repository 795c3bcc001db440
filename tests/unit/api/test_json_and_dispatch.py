"""JSON responses as clients read them, and the segment dispatch's edges: a mounted app
(``root_path``), the lifespan, a router it must leave alone."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import APIRouter, FastAPI
from starlette.types import Message, Receive, Scope, Send

from edgefed.api.dispatch import SegmentDispatch
from edgefed.api.responses import Json, dumps


def test_dates_render_in_iso_form_and_keys_as_text() -> None:
    when = dt.datetime(2026, 11, 21, 12, 30, tzinfo=dt.UTC)
    assert json.loads(dumps({"at": when, 7: "seven"})) == {
        "at": "2026-11-21T12:30:00+00:00",
        "7": "seven",
    }


def test_what_orjson_cannot_render_falls_back_to_text() -> None:
    body = {"n": 2**80, "at": dt.date(2026, 1, 2)}
    assert json.loads(dumps(body)) == {"n": 2**80, "at": "2026-01-02"}


def test_a_json_response_keeps_status_headers_and_media_type() -> None:
    r = Json({"ok": True}, status_code=201, headers={"Location": "/x/1"})
    assert r.status_code == 201
    assert r.headers["location"] == "/x/1"
    assert r.headers["content-type"] == "application/json"
    assert json.loads(r.body) == {"ok": True}


def app_with_segments(started: list[str] | None = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if started is not None:
            started.append("up")
        yield

    app = FastAPI(lifespan=lifespan)
    identity = APIRouter()

    @identity.get("/identity/v3")
    async def version() -> dict[str, str]:
        return {"v": "3"}

    @identity.get("/{anything}/echo")
    async def echo(anything: str) -> dict[str, str]:
        return {"echo": anything}

    app.include_router(identity)
    SegmentDispatch(app.router).install()
    return app


async def get(app: FastAPI, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, **kwargs)
    async with httpx.AsyncClient(transport=transport, base_url="http://site") as client:
        return await client.get(path)


async def test_routes_with_a_parameter_first_are_tried_for_every_segment() -> None:
    app = app_with_segments()
    assert isinstance(app.router.middleware_stack, SegmentDispatch)
    assert (await get(app, "/identity/v3")).json() == {"v": "3"}
    assert (await get(app, "/compute/echo")).json() == {"echo": "compute"}
    assert (await get(app, "/identity/echo")).json() == {"echo": "identity"}
    assert (await get(app, "/nowhere")).status_code == 404


async def test_an_app_mounted_below_a_root_path_dispatches_on_the_path_below_it() -> None:
    app = app_with_segments()
    r = await get(app, "/site/identity/v3", root_path="/site")
    assert r.status_code == 200 and r.json() == {"v": "3"}


async def test_the_lifespan_reaches_the_router() -> None:
    started: list[str] = []
    app = app_with_segments(started)

    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    sent: list[Message] = []

    async def receive() -> Message:
        return next(messages)

    async def send(message: Message) -> None:
        sent.append(message)

    await app.router.middleware_stack({"type": "lifespan", "app": app}, receive, send)
    assert started == ["up"]
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_a_router_with_middleware_of_its_own_is_left_alone() -> None:
    app = FastAPI()
    router = app.router

    async def own(scope: Scope, receive: Receive, send: Send) -> None:
        await router.app(scope, receive, send)

    router.middleware_stack = own
    SegmentDispatch(router).install()
    assert router.middleware_stack is own
