"""Request counters and latencies: a pure ASGI middleware and the registry it feeds.

Each site app owns one ``RequestMetrics`` (several sites may share a process in tests,
so nothing goes to prometheus_client's global registry). The Prometheus side is a
counter and a histogram labelled by service (from the path prefix), method and status
code; the JSON side (telemetry) is a sliding window of the last minute per service, so
a rate is "requests per second over the last 60 s" without a scraper doing the maths.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

WINDOW_SECONDS = 60.0
MAX_WINDOW_SAMPLES = 100_000
# Labelled series kept at hand (a client may send any method name: bounded).
MAX_CACHED_SERIES = 1024
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


class RequestMetrics:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "edgefed_http_requests",
            "HTTP requests served by this site.",
            ("service", "method", "code"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "edgefed_http_request_duration_seconds",
            "Time to the end of the response, by service.",
            ("service", "method"),
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self._window: deque[Sample] = deque(maxlen=MAX_WINDOW_SAMPLES)
        # (service, method, status) -> its counter and histogram: ``labels()`` takes a
        # lock and builds the label tuple on every call, a visible share of a fast request.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, *, service: str, method: str, status: int, seconds: float) -> None:
        key = (service, method, status)
        series = self._series.get(key)
        if series is None:
            series = (
                self.requests.labels(service, method, str(status)),
                self.latency.labels(service, method),
            )
            if len(self._series) < MAX_CACHED_SERIES:
                self._series[key] = series
        series[0].inc()
        series[1].observe(seconds)
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
        return bytes(generate_latest(self.registry))


def _quantile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


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
