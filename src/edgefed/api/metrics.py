"""Request counters and latencies: a pure ASGI middleware and the registry it feeds.

Each site app owns one ``RequestMetrics`` (several sites may share a process in tests,
so nothing goes to prometheus_client's global registry). The Prometheus side is a
counter and a histogram labelled by service (from the path prefix), method and status
code; the JSON side (telemetry) is a sliding window of the last minute per service, so
a rate is "requests per second over the last 60 s" without a scraper doing the maths.

The counts are plain numbers here, put into prometheus_client's families only when
``/metrics`` is scraped: imported for every request's ``Counter`` and ``Histogram``,
prometheus_client (and the HTTP servers of its exposition module) cost an idle site
0.9 MiB (docs/bench.md, ``footprint``); the text it writes is the same.
"""

from __future__ import annotations

import itertools
import os
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

WINDOW_SECONDS = 60.0
MAX_WINDOW_SAMPLES = 100_000
REQUESTS = ("edgefed_http_requests", "HTTP requests served by this site.")
LATENCY = ("edgefed_http_request_duration_seconds", "Time to the end of the response, by service.")
# The latency histogram's upper bounds, in seconds (and +Inf).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
PREFIXES = (
    ("/identity", "identity"),
    ("/compute", "compute"),
    ("/image", "image"),
    ("/network", "network"),
    ("/volume", "volume"),
    ("/edge", "edge"),
    ("/dashboard", "dashboard"),
    ("/metrics", "metrics"),
)


def service_label(path: str) -> str:
    for prefix, name in PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return name
    return "other"


@dataclass(frozen=True, slots=True)
class Sample:
    at: float
    service: str
    seconds: float
    error: bool


class Latency:
    """One series of the latency histogram: the count in each bucket (the last one above
    the highest bound), their sum, and when the series began (its ``_created``)."""

    __slots__ = ("buckets", "created", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.total = 0.0
        self.created = time.time()

    def observe(self, seconds: float) -> None:
        self.buckets[bisect_left(BUCKETS, seconds)] += 1  # the first bound >= seconds
        self.total += seconds


class RequestMetrics:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._window: deque[Sample] = deque(maxlen=MAX_WINDOW_SAMPLES)
        # (service, method, status) -> requests, and when that series began
        self._requests: dict[tuple[str, str, int], list[float]] = {}
        # (service, method) -> latency histogram
        self._latency: dict[tuple[str, str], Latency] = {}

    def observe(self, *, service: str, method: str, status: int, seconds: float) -> None:
        counter = self._requests.get((service, method, status))
        if counter is None:
            counter = self._requests[service, method, status] = [0.0, time.time()]
        counter[0] += 1
        latency = self._latency.get((service, method))
        if latency is None:
            latency = self._latency[service, method] = Latency()
        latency.observe(seconds)
        self._window.append(
            Sample(at=self.clock(), service=service, seconds=seconds, error=status >= 500)
        )

    def window(self) -> dict[str, dict[str, Any]]:
        """Per service over the last minute: rate (req/s), p50/p95 latency (ms), errors."""
        horizon = self.clock() - WINDOW_SECONDS
        while self._window and self._window[0].at < horizon:
            self._window.popleft()
        by_service: dict[str, list[Sample]] = {}
        for sample in self._window:
            by_service.setdefault(sample.service, []).append(sample)
        out: dict[str, dict[str, Any]] = {}
        for service, samples in sorted(by_service.items()):
            times = sorted(s.seconds for s in samples)
            out[service] = {
                "requests": len(samples),
                "rate_per_second": round(len(samples) / WINDOW_SECONDS, 3),
                "latency_p50_ms": round(_quantile(times, 0.5) * 1000, 2),
                "latency_p95_ms": round(_quantile(times, 0.95) * 1000, 2),
                "server_errors": sum(1 for s in samples if s.error),
            }
        return out

    def exposition(self) -> bytes:
        """The Prometheus text of a ``Counter`` and a ``Histogram`` that had counted the
        same (``_total``, ``_bucket``, ``_count``, ``_sum``, ``_created``)."""
        from prometheus_client import generate_latest

        families = list(self._families())
        return bytes(generate_latest(_Families(families)))

    def _families(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
        from prometheus_client.samples import Sample as PromSample

        created = os.environ.get("PROMETHEUS_DISABLE_CREATED_SERIES", "False").lower() not in (
            "true",
            "1",
            "t",
        )  # as prometheus_client's own metrics read it
        requests = CounterMetricFamily(*REQUESTS, labels=("service", "method", "code"))
        for (service, method, status), (count, began) in self._requests.items():
            requests.add_metric(
                (service, method, str(status)), count, created=began if created else None
            )
        yield requests
        latency = HistogramMetricFamily(*LATENCY, labels=("service", "method"))
        bounds = [*map(repr, BUCKETS), "+Inf"]  # the ``le`` labels, as Histogram writes them
        for (service, method), series in self._latency.items():
            cumulative = [float(n) for n in itertools.accumulate(series.buckets)]
            latency.add_metric(
                (service, method), list(zip(bounds, cumulative, strict=True)), series.total
            )
            if created:
                labels = {"service": service, "method": method}
                latency.samples.append(PromSample(f"{LATENCY[0]}_created", labels, series.created))
        yield latency


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


@dataclass(frozen=True)
class _Families:
    """What ``generate_latest`` collects from: these families."""

    families: list[Metric]

    def collect(self) -> list[Metric]:
        return self.families


class MetricsMiddleware:
    """Counts every HTTP request and times it to the end of its response body."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: RequestMetrics,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.timer = timer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = self.timer()
        status = 500

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self.metrics.observe(
                service=service_label(scope["path"]),
                method=scope["method"],
                status=status,
                seconds=self.timer() - started,
            )
