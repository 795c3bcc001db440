"""The middleware every request passes, each an ASGI callable tested alone: request ids,
request metrics (counted, timed, windowed on a fake clock), the body limit."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Message, Receive, Scope, Send

from edgefed.api.metrics import (
    BUCKETS,
    LATENCY,
    REQUESTS,
    WINDOW_SECONDS,
    MetricsMiddleware,
    RequestMetrics,
    service_label,
)
from edgefed.api.middleware import BodyLimit, RequestId, new_request_id

REQUEST_ID = re.compile(
    rb"^req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
)


async def answer(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that reads the body and echoes it with the status the path names."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    status = int(scope["path"].rsplit("/", 1)[-1]) if scope["path"][-1].isdigit() else 200
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def call(app: Any, method: str = "GET", path: str = "/x", **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://site") as client:
        return await client.request(method, path, **kwargs)


# ---- request ids ---------------------------------------------------------------------------


def test_request_ids_are_openstack_style_version_4_uuids() -> None:
    ids = {new_request_id() for _ in range(2000)}
    assert len(ids) == 2000
    for rid in list(ids)[:200]:
        assert REQUEST_ID.match(rid), rid
        parsed = uuid.UUID(rid[4:].decode())
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


async def test_every_response_carries_one_request_id_under_both_names() -> None:
    r = await call(RequestId(answer), path="/identity/v3/404")
    assert r.status_code == 404
    rid = r.headers["x-openstack-request-id"]
    assert r.headers["x-compute-request-id"] == rid
    assert REQUEST_ID.match(rid.encode())
    again = await call(RequestId(answer))
    assert again.headers["x-openstack-request-id"] != rid


async def test_non_http_scopes_pass_through_untouched() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])
        await send({"type": "lifespan.startup.complete"})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "lifespan.startup"}

    metrics = RequestMetrics()
    for middleware in (RequestId(app), MetricsMiddleware(app, metrics=metrics)):
        await middleware({"type": "lifespan"}, receive, send)
    assert seen == ["lifespan", "lifespan"]
    assert sent == [{"type": "lifespan.startup.complete"}] * 2
    assert metrics.window() == {}


# ---- metrics -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("/identity/v3/auth/tokens", "identity"),
        ("/compute", "compute"),
        ("/image/v2/images", "image"),
        ("/network/v2.0", "network"),
        ("/volume/v3", "volume"),
        ("/edge/v1/alarms", "edge"),
        ("/dashboard/", "dashboard"),
        ("/metrics", "metrics"),
        ("/", "other"),
        ("/computex", "other"),
    ],
)
def test_the_service_label_is_the_first_path_segment(path: str, label: str) -> None:
    assert service_label(path) == label


def test_the_window_is_the_last_minute_per_service() -> None:
    now = [100.0]
    metrics = RequestMetrics(clock=lambda: now[0])
    for ms in (10, 20, 30, 40, 1000):
        metrics.observe(service="compute", method="GET", status=200, seconds=ms / 1000)
    metrics.observe(service="compute", method="POST", status=503, seconds=0.5)
    metrics.observe(service="image", method="GET", status=404, seconds=0.002)
    window = metrics.window()
    assert set(window) == {"compute", "image"}
    compute = window["compute"]
    assert compute["requests"] == 6
    assert compute["rate_per_second"] == round(6 / WINDOW_SECONDS, 3)
    assert compute["latency_p50_ms"] in (30.0, 40.0)  # of 10, 20, 30, 40, 500, 1000
    assert compute["latency_p95_ms"] == 1000.0
    assert compute["server_errors"] == 1  # a 404 is no server error
    assert window["image"]["server_errors"] == 0
    now[0] += WINDOW_SECONDS - 1
    metrics.observe(service="image", method="GET", status=200, seconds=0.004)
    now[0] += 2  # the first seven are over a minute old now
    assert metrics.window() == {
        "image": {
            "requests": 1,
            "rate_per_second": round(1 / WINDOW_SECONDS, 3),
            "latency_p50_ms": 4.0,
            "latency_p95_ms": 4.0,
            "server_errors": 0,
        }
    }


def test_counters_keep_counting_for_every_series() -> None:
    metrics = RequestMetrics()
    for n in range(1100):
        metrics.observe(service="other", method=f"M{n}", status=200, seconds=0.001)
    metrics.observe(service="other", method="M0", status=200, seconds=0.001)
    metrics.observe(service="other", method="M1050", status=200, seconds=0.001)
    counts = {
        s.labels["method"]: s.value
        for f in text_string_to_metric_families(metrics.exposition().decode())
        if f.name == "edgefed_http_requests"
        for s in f.samples
        if s.name == "edgefed_http_requests_total"
    }
    assert len(counts) == 1100
    assert counts["M0"] == 2 and counts["M1050"] == 2


def test_the_text_is_prometheus_clients_own_counter_and_histogram() -> None:
    """The counts are plain numbers until a scrape (prometheus_client is imported then):
    the text is the one a ``Counter`` and a ``Histogram`` write, line for line."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    registry = CollectorRegistry()
    counter = Counter(*REQUESTS, ("service", "method", "code"), registry=registry)
    histogram = Histogram(*LATENCY, ("service", "method"), registry=registry, buckets=BUCKETS)
    metrics = RequestMetrics()
    observed = [
        ("compute", "GET", 200, 0.003),
        ("compute", "GET", 200, 0.005),  # on a bound: in its bucket
        ("compute", "POST", 409, 0.26),
        ("image", "GET", 200, 12.5),  # above the last bound: +Inf only
        ("compute", "GET", 503, 0.0),
    ]
    for service, method, status, seconds in observed:
        metrics.observe(service=service, method=method, status=status, seconds=seconds)
        counter.labels(service, method, str(status)).inc()
        histogram.labels(service, method).observe(seconds)

    def lines(text: bytes) -> list[str]:  # a _created value is the time a series began
        return [re.sub(r"(_created\{.*\}) .*", r"\1", line) for line in text.decode().splitlines()]

    assert lines(metrics.exposition()) == lines(generate_latest(registry))


async def test_the_middleware_counts_and_times_each_request_by_its_status() -> None:
    ticks = iter([10.0, 10.25, 20.0, 20.5])
    metrics = RequestMetrics()
    app = MetricsMiddleware(answer, metrics=metrics, timer=lambda: next(ticks))
    await call(app, "GET", "/compute/v2.1/servers/200")
    await call(app, "POST", "/compute/v2.1/servers/409")
    families = {f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())}
    totals = {
        (s.labels["service"], s.labels["method"], s.labels["code"]): s.value
        for s in families["edgefed_http_requests"].samples
        if s.name.endswith("_total")
    }
    assert totals == {("compute", "GET", "200"): 1.0, ("compute", "POST", "409"): 1.0}
    sums = {
        s.labels["method"]: s.value
        for s in families["edgefed_http_request_duration_seconds"].samples
        if s.name.endswith("_sum")
    }
    assert sums == {"GET": 0.25, "POST": 0.5}


async def test_a_request_whose_app_fails_is_counted_as_a_500() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("bug")

    metrics = RequestMetrics()
    with pytest.raises(RuntimeError):
        await call(MetricsMiddleware(broken, metrics=metrics), "GET", "/image/v2/images")
    assert metrics.window()["image"]["server_errors"] == 1


# ---- body limit ----------------------------------------------------------------------------


def limited(max_bytes: int = 16) -> BodyLimit:
    return BodyLimit(answer, max_bytes=max_bytes, streaming_suffixes=("/file",))


async def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    r = await call(limited(), "POST", "/identity/v3/x", content=b'{"a": [1, 2]}')
    assert (r.status_code, r.content) == (200, b'{"a": [1, 2]}')

    async def chunks() -> Any:
        for part in (b'{"a"', b": ", b"[1]}"):
            yield part

    r = await call(limited(), "POST", "/identity/v3/x", content=chunks())
    assert r.content == b'{"a": [1]}'


@pytest.mark.parametrize(
    ("length", "status", "message"),
    [
        ("17", 413, "larger than 16 bytes"),
        ("-1", 400, "Invalid Content-Length"),
        ("ten", 400, "Invalid Content-Length"),
    ],
)
async def test_a_declared_length_is_checked_before_reading(
    length: str, status: int, message: str
) -> None:
    read: list[Message] = []

    async def receive() -> Message:
        read.append({})
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/compute/v2.1/servers",
        "headers": [(b"content-length", length.encode())],
    }
    await limited()(scope, receive, send)
    assert read == []  # refused on the header alone
    assert sent[0]["status"] == status
    assert message.encode() in sent[1]["body"]
    assert b"badRequest" in sent[1]["body"] or b"overLimit" in sent[1]["body"]


async def test_streaming_paths_are_not_bound() -> None:
    r = await call(limited(), "PUT", "/image/v2/images/i1/file", content=b"x" * 1000)
    assert (r.status_code, len(r.content)) == (200, 1000)
    r = await call(limited(), "PUT", "/image/v2/images/i1", content=b"x" * 1000)
    assert r.status_code == 413


async def test_a_client_gone_mid_body_reaches_no_app() -> None:
    reached: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope)

    messages = iter(
        [
            {"type": "http.request", "body": b"{", "more_body": True},
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> Message:
        return next(messages)

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent to a client that left")

    scope = {"type": "http", "method": "POST", "path": "/identity/v3/x", "headers": []}
    await BodyLimit(app, max_bytes=16)(scope, receive, send)
    assert reached == []
