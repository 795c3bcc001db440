"""What crosses to another site and back: the service a path is for, the request
target as the client sent it, end-to-end headers only (and the forwarded mark, set
once), whether there is a body to stream, and a buffered body's bound."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.types import Message

from edgefed.router.wire import (
    answer_headers,
    forward_headers,
    has_body,
    header,
    is_version_document,
    read_body,
    service_of,
    target,
)


def scope_of(
    method: str = "GET",
    path: str = "/image/v2/images",
    headers: list[tuple[bytes, bytes]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "headers": headers or [], **extra}


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/compute/v2.1/servers", "compute"),
        ("/compute", "compute"),
        ("/image/v2/images", "image"),
        ("/network/v2.0/ports", "network"),
        ("/volume/v3/volumes", "volume"),
        ("/identity/v3/projects", "identity"),
        ("/placement/resource_providers", "placement"),
        ("/edge/v1/alarms", "fleet"),
        ("/computer/x", None),  # a prefix is a whole path segment
        ("/imagery", None),
        ("/", None),
        ("/dashboard", None),
    ],
)
def test_a_path_belongs_to_a_service_by_its_first_segment(path: str, service: str | None) -> None:
    assert service_of(path) == service


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/image", True),
        ("GET", "/image/", True),
        ("GET", "/image/versions", True),
        ("GET", "/image/v2/", True),
        ("HEAD", "/compute/v2.1", True),
        ("GET", "/identity/v3/", True),
        ("GET", "/network/v2.0", True),
        ("GET", "/volume/v3", True),
        ("GET", "/image/v2/images", False),
        ("GET", "/compute/v2.1/servers", False),
        ("GET", "/image/v2x", False),
        ("GET", "/imagev2", False),
        ("GET", "/dashboard", False),
        ("POST", "/image", False),
        ("DELETE", "/compute/v2.1", False),
    ],
)
def test_version_documents_are_reads_of_a_service_root_or_version_root(
    method: str, path: str, expected: bool
) -> None:
    assert is_version_document(method, path) is expected


def test_the_target_is_the_raw_path_and_query_as_sent() -> None:
    scope = scope_of(
        path="/image/v2/images/a b", raw_path=b"/image/v2/images/a%20b", query_string=b"x=1&y=%2F"
    )
    assert target(scope) == "/image/v2/images/a%20b?x=1&y=%2F"
    assert target(scope_of(path="/compute/v2.1/servers")) == "/compute/v2.1/servers"
    assert target(scope_of(path="/x", query_string=b"")) == "/x"


def test_the_first_value_of_a_header_is_read() -> None:
    scope = scope_of(headers=[(b"x-scope", b"A"), (b"x-scope", b"B")])
    assert header(scope, b"x-scope") == b"A"
    assert header(scope, b"x-other") is None


def test_hop_by_hop_headers_stay_and_the_forwarded_mark_is_set_once() -> None:
    scope = scope_of(
        headers=[
            (b"host", b"berlin.test"),
            (b"connection", b"keep-alive"),
            (b"content-length", b"12"),
            (b"transfer-encoding", b"chunked"),
            (b"proxy-authorization", b"secret"),
            (b"x-auth-token", b"tok"),
            (b"x-scope", b"{image: Denver}"),
            (b"x-edgefed-forwarded", b"Paris"),  # a client cannot choose it
            (b"content-type", b"application/json"),
        ]
    )
    assert forward_headers(scope, "Berlin") == [
        (b"x-auth-token", b"tok"),
        (b"x-scope", b"{image: Denver}"),
        (b"content-type", b"application/json"),
        (b"x-edgefed-forwarded", b"Berlin"),
    ]


def test_answer_headers_are_lowercased_end_to_end_ones() -> None:
    raw = [
        (b"Content-Type", b"application/json"),
        (b"Connection", b"close"),
        (b"Transfer-Encoding", b"chunked"),
        (b"X-Openstack-Request-Id", b"req-1"),
        (b"Content-Length", b"10"),
    ]
    assert answer_headers(raw) == [
        (b"content-type", b"application/json"),
        (b"x-openstack-request-id", b"req-1"),
    ]


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("POST", [], True),
        ("PUT", [], True),
        ("PATCH", [(b"content-length", b"0")], True),  # a write is streamed whatever it says
        ("GET", [], False),
        ("HEAD", [], False),
        ("DELETE", [], False),
        ("GET", [(b"content-length", b"0")], False),
        ("DELETE", [(b"content-length", b"5")], True),
        ("GET", [(b"transfer-encoding", b"chunked")], True),
    ],
)
def test_a_body_is_streamed_for_writes_and_for_reads_that_carry_one(
    method: str, headers: list[tuple[bytes, bytes]], expected: bool
) -> None:
    assert has_body(scope_of(method, headers=headers)) is expected


def receiver_of(*chunks: bytes) -> Any:
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks)
    ]

    async def receive() -> Message:
        return messages.pop(0)

    return receive


async def test_a_body_is_read_whole_up_to_its_limit() -> None:
    assert await read_body(receiver_of(b"ab", b"", b"cd"), limit=4) == b"abcd"
    assert await read_body(receiver_of(b""), limit=0) == b""
    assert await read_body(receiver_of(b"ab", b"cde"), limit=4) is None


async def test_reading_stops_at_the_chunk_past_the_limit() -> None:
    receive = receiver_of(b"12345", b"never read")
    assert await read_body(receive, limit=4) is None
    assert (await receive())["body"] == b"never read"  # the rest was not consumed
