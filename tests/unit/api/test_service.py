"""Mounting a service's routes under its prefix, as routes of the app's own."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Route

from edgefed.api.responses import Json
from edgefed.api.service import DeclaredRoute, mount, routes_of


class TaggedRoute(APIRoute):
    """A route class of its own, as compute's microversion routes."""


def caller() -> str:
    return "someone"


def build() -> FastAPI:
    plain = APIRouter()

    @plain.get("/things/{thing_id}", status_code=203)
    async def show(thing_id: int, who: str = Depends(caller)) -> dict[str, Any]:
        return {"id": thing_id, "who": who}

    @plain.get("")
    async def root() -> dict[str, str]:
        return {"at": "root"}

    tagged = APIRouter(prefix="/v9", route_class=TaggedRoute)

    @tagged.post("/echo")
    async def echo(body: dict[str, int]) -> dict[str, int]:
        return body

    app = FastAPI(default_response_class=Json)
    mount(app.router, routes_of(plain, tagged), prefix="/svc")
    return app


def test_mounted_routes_answer_under_the_prefix_with_their_settings() -> None:
    app = build()
    mounted = [r for r in app.routes if isinstance(r, APIRoute)]
    assert {r.path: r.built_class for r in mounted if isinstance(r, DeclaredRoute)} == {
        "/svc/things/{thing_id}": APIRoute,
        "/svc": APIRoute,
        "/svc/v9/echo": TaggedRoute,
    }
    with TestClient(app) as client:
        r = client.get("/svc/things/7")
        assert (r.status_code, r.json()) == (203, {"id": 7, "who": "someone"})
        assert client.get("/svc").json() == {"at": "root"}
        assert client.post("/svc/v9/echo", json={"a": 1}).json() == {"a": 1}
        assert client.get("/svc/things/x").status_code == 422  # its parameter types hold
        assert client.get("/things/7").status_code == 404  # only under the prefix
        assert client.delete("/svc/things/7").status_code == 405
    # Built by the requests, each as its own class exactly.
    assert {r.path: type(r) for r in mounted} == {
        "/svc/things/{thing_id}": APIRoute,
        "/svc": APIRoute,
        "/svc/v9/echo": TaggedRoute,
    }
    assert "/svc/things/{thing_id}" in app.openapi()["paths"]


def test_a_mounted_route_is_built_by_its_first_request_only() -> None:
    """Matching reads what ``DeclaredRoute.matchable`` set: a request builds the route
    that serves it, not the ones tried before it; ``/openapi.json`` builds them all."""
    app = build()
    mounted = {r.path: r for r in app.routes if isinstance(r, APIRoute)}
    assert not [p for p, r in mounted.items() if "dependant" in vars(r)]
    assert app.url_path_for("show", thing_id="7") == "/svc/things/7"
    with TestClient(app) as client:
        assert client.post("/svc/v9/echo", json={"b": 2}).json() == {"b": 2}
        assert [p for p, r in mounted.items() if "dependant" in vars(r)] == ["/svc/v9/echo"]
        assert "/svc/v9/echo" in client.get("/openapi.json").json()["paths"]
    assert all("dependant" in vars(r) for r in mounted.values())


def test_a_route_that_fails_to_build_fails_each_time() -> None:
    app = FastAPI()

    async def broken(thing: object) -> None:  # not a type FastAPI can take from a request
        return None

    declared_router = APIRouter(route_class=DeclaredRoute)
    declared_router.add_api_route("/broken", broken, status_code=204, response_model=int)
    mount(app.router, declared_router.routes, prefix="/svc")
    route = app.routes[-1]
    assert isinstance(route, DeclaredRoute)
    for _ in range(2):
        with pytest.raises(AssertionError, match="must not have a response body"):
            route.dependant  # noqa: B018


def test_only_fastapi_routes_can_be_mounted() -> None:
    app = FastAPI()

    async def bare(request: object) -> None:
        return None

    with pytest.raises(ValueError, match="not a FastAPI route"):
        mount(app.router, [Route("/bare", bare)], prefix="/svc")
