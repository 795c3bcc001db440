"""The one JSON body reader (api/bodies.py): strict JSON, and each refusal in the words
of the service that reads the body."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.requests import Request

from edgefed.api import faults
from edgefed.api.bodies import (
    EDGE_BODY,
    NOVA_BODY,
    BodyWording,
    parse_json,
    parse_object,
    read_json,
    read_object,
)
from edgefed.api.responses import Json
from edgefed.core.errors import BadRequest, EdgefedError

WORDS = BodyWording(
    empty="nothing under {key}",
    malformed="broken: {error}",
    not_object="want an object under '{key}'",
    kind="TestKind",
)


def refused(raw: bytes, wording: BodyWording = WORDS, **kw: Any) -> BadRequest:
    with pytest.raises(BadRequest) as exc:
        parse_json(raw, wording, **kw)
    return exc.value


def test_a_document_of_any_json_type_is_read() -> None:
    assert parse_json(b'{"a": [1, 2.5, null, true]}', WORDS) == {"a": [1, 2.5, None, True]}
    assert parse_json(b"[1]", WORDS) == [1]
    assert parse_json(b'"text"', WORDS) == "text"
    assert parse_json(b" 7 ", WORDS) == 7


def test_no_body_is_the_services_empty_sentence_with_the_key() -> None:
    error = refused(b"", key="network")
    assert error.message == "nothing under network"
    assert error.details["kind"] == "TestKind"
    assert error.status == 400


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b"{'single': 'quotes'}",
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b'{"s": "\\ud800"}',
        b'{"a": 1,}',
        b"\xff\xfe",
        b'{"a": 1} trailing',
    ],
)
def test_what_strict_json_does_not_allow_is_malformed(raw: bytes) -> None:
    error = refused(raw)
    assert error.message.startswith("broken: "), error.message
    assert len(error.message) > len("broken: ")


def test_an_integer_beyond_64_bits_is_read_as_a_float_no_integer_attribute_takes() -> None:
    assert parse_json(b'{"n": 18446744073709551615}', WORDS) == {"n": 2**64 - 1}
    big = parse_json(b'{"n": 123456789012345678901234567890}', WORDS)["n"]
    assert isinstance(big, float)


def test_a_site_to_site_object_is_read_whole() -> None:
    raw = b'{"network": {"name": "n"}, "other": 1}'
    first = parse_json(raw, WORDS)
    assert first == {"network": {"name": "n"}, "other": 1}
    assert parse_object(b'{"a": 1}', WORDS) == {"a": 1}


@pytest.mark.parametrize("raw", [b"[]", b'"x"', b"3", b"null"])
def test_a_site_to_site_body_must_be_an_object(raw: bytes) -> None:
    with pytest.raises(BadRequest) as exc:
        parse_object(raw, WORDS)
    assert exc.value.message == "want an object under ''"


# -- through a request, as the services read them -------------------------------------------


def reader_app(wording: BodyWording, key: str | None) -> FastAPI:
    app = FastAPI()

    async def read(request: Request) -> Json:
        body = await read_object(request, wording, key=key)
        body["seen"] = True  # a copy: the caller may change it
        return Json({"body": body})

    async def read_any(request: Request) -> Json:
        return Json({"body": await read_json(request, wording)})

    app.add_api_route("/obj", read, methods=["POST"])
    app.add_api_route("/any", read_any, methods=["POST"])
    app.add_exception_handler(EdgefedError, faults.handle_edgefed_error)
    return app


async def post(app: FastAPI, path: str, content: bytes) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://site") as client:
        return await client.post(path, content=content)


async def test_a_keyed_body_gives_the_object_under_its_key() -> None:
    app = reader_app(WORDS, "network")
    r = await post(app, "/obj", b'{"network": {"name": "n"}}')
    assert r.status_code == 200 and r.json() == {"body": {"name": "n", "seen": True}}
    for raw in (b'{"subnet": {}}', b'{"network": "n"}', b'{"network": null}', b"[]"):
        r = await post(app, "/obj", raw)
        assert r.status_code == 400, raw
        assert r.json()["error"]["message"] == "want an object under 'network'"


async def test_an_unkeyed_body_must_be_an_object_itself() -> None:
    app = reader_app(EDGE_BODY, None)
    assert (await post(app, "/obj", b'{"a": 1}')).json() == {"body": {"a": 1, "seen": True}}
    r = await post(app, "/obj", b"[1]")
    assert r.json()["error"]["message"] == "The request body must be a JSON object."
    r = await post(app, "/obj", b"")
    assert r.json()["error"]["message"] == "The request body is empty: a JSON object is expected."
    r = await post(app, "/obj", b"{")
    assert r.json()["error"]["message"] == "Malformed JSON in request body."
    # read_json takes any document.
    assert (await post(app, "/any", b"[1, 2]")).json() == {"body": [1, 2]}


async def test_nova_words_its_refusals_as_nova_does() -> None:
    app = reader_app(NOVA_BODY, "server")
    cases = {
        b"": "The request body is empty: a JSON object is expected.",
        b"{x": "Malformed request body: it is not valid JSON.",
        b'{"server": []}': "Malformed request body: a JSON object is expected.",
    }
    for raw, message in cases.items():
        r = await post(app, "/obj", raw)
        assert (r.status_code, r.json()["error"]["message"]) == (400, message)
