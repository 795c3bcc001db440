"""A small HTTP/1.1 load generator that runs in its own process, pinned to its own core.

Why not an off-the-shelf tool: the anchor (Keystone under gunicorn's sync worker)
closes the connection after every response, while edgefed keeps it alive; the same
generator must drive both fairly, count every non-2xx answer as an error and report
p50/p99 latency. ``wrk`` would need Lua for the error accounting and a Debian package
on every machine; this is ~250 lines of asyncio protocols on uvloop, which easily
outruns a single-core Python server (see the smoke test and docs/bench.md).

Each of ``connections`` protocols keeps exactly one request in flight: send, read the
whole response (Content-Length or chunked), record the latency, send the next one. A
server that says ``Connection: close`` (or just closes) gets a fresh connection, whose
connect time counts in the next request's latency, as it would for a real client.
The run is bounded by ``duration_s`` *and* ``max_requests``; a warm-up phase runs
first and is not counted. An ``https://`` URL is driven over TLS (certificate not
checked: the generator measures the server, the handshake happens once per connection).

Use it as ``run_load(spec)`` from the bench (spawns ``python -m bench.loadgen`` with
the spec as JSON on stdin and reads the result as JSON from stdout).
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
import time
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

HEADER_END = b"\r\n\r\n"


@dataclass(frozen=True)
class LoadSpec:
    """What to send, how hard and for how long."""

    url: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    connections: int = 16
    duration_s: float = 10.0
    warmup_s: float = 2.0
    max_requests: int = 2_000_000
    ok_statuses: tuple[int, ...] = (200, 201)
    cpu: int | None = None  # pin the generator to this core when set

    def request_bytes(self) -> tuple[str, int, bytes]:
        parts = urlsplit(self.url)
        host = parts.hostname or "127.0.0.1"
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        body = self.body.encode()
        lines = [f"{self.method} {target} HTTP/1.1", f"Host: {host}:{port}"]
        lines += [f"{k}: {v}" for k, v in self.headers.items()]
        if body or self.method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        return host, port, head + body


@dataclass
class LoadResult:
    """Counts over the measured phase only (the warm-up is discarded)."""

    requests: int  # responses completed
    ok: int  # responses whose status is in ok_statuses
    errors: int  # other statuses + broken connections
    error_kinds: dict[str, int]
    elapsed_s: float
    rps: float  # ok responses per second
    p50_ms: float
    p99_ms: float
    connects: int  # TCP connections opened (keep-alive shows as few)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class _Counters:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.ok = 0
        self.error_kinds: dict[str, int] = {}
        self.connects = 0

    def error(self, kind: str) -> None:
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1


class _Run:
    """Shared state of one run: the request, the phase and the stop conditions."""

    def __init__(self, spec: LoadSpec) -> None:
        self.spec = spec
        self.host, self.port, self.request = spec.request_bytes()
        self.tls: ssl.SSLContext | None = None
        if urlsplit(spec.url).scheme == "https":
            self.tls = ssl.create_default_context()
            self.tls.check_hostname = False
            self.tls.verify_mode = ssl.CERT_NONE
        self.ok_statuses = frozenset(spec.ok_statuses)
        self.counters = _Counters()
        self.measuring = False
        self.sent = 0
        self.deadline = 0.0
        self.done = asyncio.Event()
        self.open_connections = 0
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Start a task and hold a reference until it ends (the loop keeps only weak ones)."""
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def may_send(self) -> bool:
        return self.sent < self.spec.max_requests and time.perf_counter() < self.deadline


class _Connection(asyncio.Protocol):
    """One keep-alive connection with exactly one request in flight."""

    def __init__(self, run: _Run, *, started: float) -> None:
        self.run = run
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.started = started  # when the first request began, connect time included
        self.in_flight = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.run.counters.connects += 1
        self.send()

    def send(self) -> None:
        assert self.transport is not None
        if not self.run.may_send():
            self.transport.close()
            return
        self.run.sent += 1
        if not self.started:
            self.started = time.perf_counter()
        self.in_flight = True
        self.transport.write(self.run.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.in_flight:
            parsed = _parse_response(self.buffer)
            if parsed is None:
                return
            status, consumed, close = parsed
            del self.buffer[:consumed]
            self.finish(status)
            if close:
                assert self.transport is not None
                self.transport.close()
                return
            self.send()

    def finish(self, status: int) -> None:
        now = time.perf_counter()
        counters = self.run.counters
        if self.run.measuring:
            counters.latencies.append(now - self.started)
            if status in self.run.ok_statuses:
                counters.ok += 1
            else:
                counters.error(f"http {status}")
        self.started = 0.0
        self.in_flight = False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.in_flight and self.run.measuring:
            self.run.counters.error("connection lost")
        reconnect = self.run.may_send()
        if reconnect and self.in_flight:
            self.started = 0.0  # the lost request is an error, not a latency sample
        self.in_flight = False
        if reconnect:
            self.run.spawn(_connect(self.run, started=self.started))
        else:
            self.run.open_connections -= 1
            if self.run.open_connections == 0:
                self.run.done.set()


async def _connect(run: _Run, *, started: float = 0.0) -> None:
    """Open a connection; a refused connect counts as an error and is retried."""
    loop = asyncio.get_running_loop()
    while run.may_send():
        begin = started or time.perf_counter()
        try:
            await loop.create_connection(
                lambda: _Connection(run, started=begin),
                run.host,
                run.port,
                ssl=run.tls,
                server_hostname=run.host if run.tls is not None else None,
            )
        except OSError as exc:
            if run.measuring:
                run.counters.error(f"connect: {exc.strerror or exc}")
            await asyncio.sleep(0.01)  # back off a refused connect, bounded by the deadline
            continue
        return
    run.open_connections -= 1
    if run.open_connections == 0:
        run.done.set()


def _parse_response(buf: bytearray) -> tuple[int, int, bool] | None:
    """``(status, bytes consumed, server closes)`` once a whole response is buffered."""
    end = buf.find(HEADER_END)
    if end < 0:
        return None
    head = bytes(buf[:end]).decode("latin-1").split("\r\n")
    version, status_text = head[0].split(" ", 2)[:2]
    status = int(status_text)
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip().lower()
    body_start = end + 4
    close = headers.get("connection") == "close" or version == "HTTP/1.0"
    if "content-length" in headers:
        total = body_start + int(headers["content-length"])
        if len(buf) < total:
            return None
        return status, total, close
    if headers.get("transfer-encoding") == "chunked":
        pos = body_start
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
            pos = line_end + 2 + size + 2
            if len(buf) < pos:
                return None
            if size == 0:
                return status, pos, close
    if status in (204, 304) or 100 <= status < 200:
        return status, body_start, close
    return None  # body until close: not used by the servers we measure


async def _phase(run: _Run, seconds: float, *, measuring: bool) -> float:
    run.measuring = measuring
    run.done = asyncio.Event()
    run.deadline = time.perf_counter() + seconds
    run.open_connections = run.spec.connections
    begin = time.perf_counter()
    for _ in range(run.spec.connections):
        run.spawn(_connect(run))
    try:
        await asyncio.wait_for(run.done.wait(), timeout=seconds + 30)
    except TimeoutError:
        run.counters.error("hung connections at the end")
    return time.perf_counter() - begin


async def _drive(spec: LoadSpec) -> LoadResult:
    run = _Run(spec)
    if spec.warmup_s > 0:
        await _phase(run, spec.warmup_s, measuring=False)
    run.counters = _Counters()
    run.sent = 0
    elapsed = await _phase(run, spec.duration_s, measuring=True)
    c = run.counters
    lat = sorted(c.latencies)
    errors = sum(c.error_kinds.values())
    return LoadResult(
        requests=len(lat),
        ok=c.ok,
        errors=errors,
        error_kinds=c.error_kinds,
        elapsed_s=round(elapsed, 3),
        rps=round(c.ok / elapsed, 1) if elapsed > 0 else 0.0,
        p50_ms=round(_percentile(lat, 0.50) * 1000, 2),
        p99_ms=round(_percentile(lat, 0.99) * 1000, 2),
        connects=c.connects,
    )


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[index]


def drive(spec: LoadSpec) -> LoadResult:
    """Run the load in this process (the subprocess entry point; tests may call it)."""
    try:
        import uvloop

        return uvloop.run(_drive(spec))
    except ImportError:
        return asyncio.run(_drive(spec))


def run_load(spec: LoadSpec) -> LoadResult:
    """Run the load in a separate process so it never shares the server's core."""
    payload = json.dumps(asdict(spec))
    out = subprocess.run(
        [sys.executable, "-m", "bench.loadgen"],
        cwd=Path(__file__).resolve().parent.parent,  # where the bench package is importable
        input=payload,
        capture_output=True,
        text=True,
        timeout=spec.warmup_s + spec.duration_s + 90,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed:\n{out.stderr}")
    data = json.loads(out.stdout)
    return LoadResult(**data)


def main() -> None:
    raw = json.loads(sys.stdin.read())
    raw["ok_statuses"] = tuple(raw.get("ok_statuses", (200, 201)))
    spec = LoadSpec(**raw)
    if spec.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {spec.cpu})
    print(json.dumps(drive(spec).as_dict()))


if __name__ == "__main__":
    main()
