"""Errors rendered in one place, in the fault shape each OpenStack client parses: the
style follows the path's service, the status its class, the message what was wrong."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from edgefed.api import faults
from edgefed.api.responses import Json
from edgefed.core import errors
from edgefed.core.errors import EdgefedError


@pytest.mark.parametrize(
    ("path", "style"),
    [
        ("/compute/v2.1/servers", "nova"),
        ("/compute", "nova"),
        ("/volume/v3/volumes", "nova"),
        ("/image/v2/images", "glance"),
        ("/network/v2.0/ports", "neutron"),
        ("/identity/v3/users", "keystone"),
        ("/edge/v1/alarms", "keystone"),
        ("/computers", "keystone"),  # a prefix is a whole segment
        ("/imagery/x", "keystone"),
        ("/", "keystone"),
    ],
)
def test_the_style_follows_the_service_of_the_path(path: str, style: str) -> None:
    assert faults.style_for(path) == style


def test_each_style_has_its_clients_shape() -> None:
    assert faults.fault_body("nova", 404, "gone") == {
        "itemNotFound": {"code": 404, "message": "gone"}
    }
    assert faults.fault_body("nova", 409, "busy") == {
        "conflictingRequest": {"code": 409, "message": "busy"}
    }
    assert faults.fault_body("nova", 500, "bug") == {
        "computeFault": {"code": 500, "message": "bug"}
    }
    assert faults.fault_body("glance", 403, "no") == {
        "code": "403 Forbidden",
        "title": "Forbidden",
        "message": "no",
    }
    assert faults.fault_body("neutron", 404, "x") == {
        "NeutronError": {"type": "NotFound", "message": "x", "detail": ""}
    }
    assert faults.fault_body("neutron", 409, "x", kind="IpAddressInUse")["NeutronError"][
        "type"
    ] == ("IpAddressInUse")
    assert faults.fault_body("keystone", 401, "who?") == {
        "error": {"code": 401, "title": "Unauthorized", "message": "who?"}
    }
    assert faults.fault_body("keystone", 418, "tea")["error"]["title"] == "Error"


def test_a_keystone_401_tells_where_to_authenticate() -> None:
    r = faults.fault_response("/identity/v3/users", 401, "who?")
    assert r.headers["www-authenticate"] == 'Keystone uri="/identity"'
    assert "www-authenticate" not in faults.fault_response("/compute/v2.1", 401, "x").headers
    assert "www-authenticate" not in faults.fault_response("/identity/v3", 403, "x").headers


@pytest.mark.parametrize(
    ("errs", "message"),
    [
        (
            [{"type": "missing", "loc": ("body", "user", "name")}],
            "'user.name' is a required property",
        ),
        (
            [{"type": "extra_forbidden", "loc": ("body", "user", "nick")}],
            "Additional properties are not allowed ('nick' was unexpected)",
        ),
        ([{"type": "json_invalid", "loc": ("body", 3)}], "Malformed JSON in request body."),
        (
            [{"type": "int_parsing", "loc": ("query", "limit"), "msg": "not an int"}],
            "Invalid input for field 'query.limit': not an int",
        ),
        ([{"type": "x", "loc": ("body",), "msg": "bad body"}], "bad body"),
        ([], "Invalid input."),
    ],
)
def test_validation_errors_read_as_one_sentence(errs: list[dict[str, Any]], message: str) -> None:
    assert faults.describe_validation(errs) == message


def test_at_most_five_validation_errors_are_named() -> None:
    errs = [{"type": "missing", "loc": ("body", f"f{i}")} for i in range(8)]
    described = faults.describe_validation(errs)
    assert described.count("required property") == 5 and "f5" not in described


class Body(BaseModel):
    model_config = {"extra": "forbid"}
    name: str


def app_raising(exc: BaseException) -> FastAPI:
    app = FastAPI(default_response_class=Json)
    app.add_exception_handler(EdgefedError, faults.handle_edgefed_error)
    app.add_exception_handler(RequestValidationError, faults.handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, faults.handle_http_exception)
    app.add_exception_handler(Exception, faults.handle_unexpected)

    for prefix in ("/compute/v2.1", "/image/v2", "/network/v2.0", "/identity/v3"):

        @app.get(prefix + "/boom")
        async def boom() -> None:
            raise exc

        @app.post(prefix + "/things")
        async def things(body: Body) -> dict[str, str]:
            return {"name": body.name}

    return app


async def call(app: FastAPI, method: str, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://site") as client:
        return await client.request(method, path, **kwargs)


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (errors.BadRequest("x"), 400),
        (errors.ValidationFailed("x"), 400),
        (errors.Unauthorized("x"), 401),
        (errors.Forbidden("x"), 403),
        (errors.OverQuota("x"), 403),
        (errors.NotFound("x"), 404),
        (errors.MethodNotAllowed("x"), 405),
        (errors.NotAcceptable("x"), 406),
        (errors.Conflict("x"), 409),
        (errors.Locked("x", source="Central"), 409),
        (errors.Gone("x"), 410),
        (errors.PayloadTooLarge("x"), 413),
        (errors.UnsupportedMediaType("x"), 415),
        (errors.RangeNotSatisfiable("x"), 416),
        (errors.UpstreamFailed("x"), 502),
        (errors.Unavailable("x"), 503),
    ],
)
async def test_each_error_class_is_its_status_in_every_style(
    exc: EdgefedError, status: int
) -> None:
    app = app_raising(exc)
    nova = await call(app, "GET", "/compute/v2.1/boom")
    assert nova.status_code == status
    [(key, body)] = nova.json().items()
    assert body == {"code": status, "message": "x"}
    glance = (await call(app, "GET", "/image/v2/boom")).json()
    assert glance["code"].startswith(str(status)) and glance["message"] == "x"
    assert (await call(app, "GET", "/network/v2.0/boom")).json()["NeutronError"]["message"] == "x"
    assert (await call(app, "GET", "/identity/v3/boom")).json()["error"]["code"] == status


async def test_a_bad_field_is_named_once_and_headers_and_kinds_travel() -> None:
    r = await call(
        app_raising(errors.ValidationFailed("too long", field="name")), "GET", "/identity/v3/boom"
    )
    assert r.json()["error"]["message"] == "too long (field 'name')"
    r = await call(
        app_raising(errors.ValidationFailed("name is too long", field="name")),
        "GET",
        "/identity/v3/boom",
    )
    assert r.json()["error"]["message"] == "name is too long"
    r = await call(
        app_raising(errors.PayloadTooLarge("big", headers={"Retry-After": "5"})),
        "GET",
        "/image/v2/boom",
    )
    assert r.headers["retry-after"] == "5"
    r = await call(
        app_raising(errors.Conflict("in use", kind="IpAddressInUse")), "GET", "/network/v2.0/boom"
    )
    assert r.json()["NeutronError"]["type"] == "IpAddressInUse"


async def test_a_bug_is_a_generic_500_and_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="edgefed.faults"):
        r = await call(app_raising(RuntimeError("secret detail")), "GET", "/compute/v2.1/boom")
    assert r.status_code == 500
    assert r.json() == {
        "computeFault": {
            "code": 500,
            "message": "An unexpected error prevented the server from fulfilling your request.",
        }
    }
    assert "secret detail" not in r.text
    assert "secret detail" in caplog.text and "Traceback" in caplog.text


async def test_body_validation_is_a_400_in_the_services_style() -> None:
    app = app_raising(errors.BadRequest("unused"))
    r = await call(app, "POST", "/compute/v2.1/things", json={"nick": "x"})
    assert r.status_code == 400
    message = r.json()["badRequest"]["message"]
    assert "'name' is a required property" in message and "'nick' was unexpected" in message
    r = await call(
        app,
        "POST",
        "/identity/v3/things",
        content=b"{",
        headers={"content-type": "application/json"},
    )
    assert r.json()["error"]["message"] == "Malformed JSON in request body."


async def test_routing_misses_say_what_was_asked() -> None:
    app = app_raising(errors.BadRequest("unused"))
    r = await call(app, "GET", "/compute/v2.1/nothing")
    assert r.json() == {
        "itemNotFound": {
            "code": 404,
            "message": "The resource could not be found: GET /compute/v2.1/nothing",
        }
    }
    r = await call(app, "DELETE", "/network/v2.0/boom")
    assert r.status_code == 405
    assert (
        r.json()["NeutronError"]["message"] == "Method DELETE is not allowed on /network/v2.0/boom"
    )
    assert r.headers["allow"] == "GET"
