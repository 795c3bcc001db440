"""The inter-site client (``api/http1.py``) against httpx on an aiohttp transport.

``api/http1.py`` is an HTTP/1.1 client of our own; issue 13 keeps it only if it beats
the obvious off-the-shelf choice clearly. The anchor is ``httpx.AsyncClient`` over
``httpx_aiohttp.AiohttpTransport`` (aiohttp parses with its own C parser and keeps
connections alive per host), measured in the same run against the same server.

The server is one real ``edgefed site serve`` on loopback (pinned to one core); this
process is the client (pinned to the other core) and runs every contender on uvloop, as
a site does. The request is the one the router forwards most, ``GET /image/v2/images``
with a token and the headers a forwarded request carries. Two workloads:

- **one at a time**: each request waits for the previous answer, on one kept-alive
  connection (a forwarded request, a sync push);
- **fan-out**: bursts of ``BURST`` requests at once, each burst awaited as a whole
  (the origin of a fan-out), over as many kept-alive connections.

Two paths, each measured with both transports:

- **router**: what ``router/middleware.py`` ``_send`` does: ``PeerTransport.forward``
  for ours, ``transport.handle_async_request(httpx.Request(...))`` for any other;
- **client**: ``httpx.AsyncClient(transport=...).get`` (service-to-service calls through
  ``SiteContext.http``).

And for context: aiohttp's own ``ClientSession`` (no httpx layers) and httpx's default
transport (httpcore with h11, which http1.py replaced).

Contenders alternate within each of ``ROUNDS`` rounds (each round starting one further
down the list), each phase after its own short warm-up (connections idle longer than the
keep-alive expiry are reopened there, not in the measurement); the median round is
kept. Figures per contender: requests per second and the CPU time of this process per
request (``time.process_time``: the client's whole cost, parsing, pooling and event loop
included). Ratios are anchor / ours for CPU and ours / anchor for req/s, so above 1
means ours is ahead. Goal ("clearly"): ours at
least ``GOAL`` times less CPU per request on every path and workload, with no fewer
requests per second (``REQ_S_FLOOR``: req/s carry the server's time and the machine's
background, and move by about a tenth between neighbouring phases). Each ratio is the
median of the rounds' own ratios.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import uvloop
from httpx_aiohttp import AiohttpTransport

from bench.cores import LOADGEN_CPU, SERVER_CPU, can_pin, cpu_seconds, pinned_children
from edgefed.api.peer_transport import PeerTransport
from edgefed.testkit.fleet_process import password_token
from edgefed.testkit.process import SiteProcess

PATH = "/image/v2/images"
IMAGES = 3  # in the list: an answer of ~2 KB, like a small site's
ROUNDS = 5
SEQUENTIAL = 2000  # requests per one-at-a-time phase
BURST = 32  # requests per fan-out burst (the fan-out benchmark's 32 sites)
BURSTS = 60  # bursts per fan-out phase
WARMUP = 2 * BURST
TIMEOUT = 30.0
GOAL = 1.2  # client CPU per request: the anchor's / ours
# ... and no fewer req/s, within what neighbouring phases differ by on a shared machine
REQ_S_FLOOR = 0.9
# What the site's inter-site client is built with (app.py).
LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64)

Get = Callable[[], Awaitable[tuple[int, int]]]  # one request: (status, body bytes)


class Contender:
    """One way of sending the request: ``get`` once per request, ``aclose`` at the end."""

    name = ""
    path = ""  # which pair it belongs to: "router", "client" or "context"

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = url
        self.headers = headers

    async def get(self) -> tuple[int, int]:
        raise NotImplementedError

    async def aclose(self) -> None:
        pass


async def _drain(response: httpx.Response) -> int:
    """Read an answer straight off its stream, as the router does (``_read_decoded``)."""
    try:
        size = 0
        async for piece in response.stream:  # type: ignore[union-attr]
            size += len(piece)
        return size
    finally:
        await response.aclose()


class Http1Forward(Contender):
    name = "http1   PeerTransport.forward"
    path = "router"

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(url, headers)
        self.transport = PeerTransport(limits=LIMITS)
        self.wire = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self.base = url.removesuffix(PATH)

    async def get(self) -> tuple[int, int]:
        r = await self.transport.forward(self.base, "GET", PATH, self.wire, None, TIMEOUT)
        return r.status_code, await _drain(r)

    async def aclose(self) -> None:
        await self.transport.aclose()


class AiohttpRequest(Contender):
    name = "aiohttp AiohttpTransport.handle_async_request"
    path = "router"

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(url, headers)
        self.transport = AiohttpTransport(limits=LIMITS)
        self.timeouts = httpx.Timeout(TIMEOUT).as_dict()

    async def get(self) -> tuple[int, int]:
        request = httpx.Request(
            "GET", self.url, headers=self.headers, extensions={"timeout": self.timeouts}
        )
        r = await self.transport.handle_async_request(request)
        return r.status_code, await _drain(r)

    async def aclose(self) -> None:
        await self.transport.aclose()


class _Client(Contender):
    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(url, headers)
        self.client = httpx.AsyncClient(transport=self.transport(), timeout=TIMEOUT)

    def transport(self) -> httpx.AsyncBaseTransport | None:
        raise NotImplementedError

    async def get(self) -> tuple[int, int]:
        r = await self.client.get(self.url, headers=self.headers)
        return r.status_code, len(r.content)

    async def aclose(self) -> None:
        await self.client.aclose()


class Http1Client(_Client):
    name = "http1   AsyncClient(PeerTransport).get"
    path = "client"

    def transport(self) -> httpx.AsyncBaseTransport:
        return PeerTransport(limits=LIMITS)


class AiohttpClient(_Client):
    name = "aiohttp AsyncClient(AiohttpTransport).get"
    path = "client"

    def transport(self) -> httpx.AsyncBaseTransport:
        return AiohttpTransport(limits=LIMITS)


class HttpcoreClient(Contender):
    name = "httpcore AsyncClient().get (h11, before http1.py)"
    path = "context"

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(url, headers)
        self.client = httpx.AsyncClient(limits=LIMITS, timeout=TIMEOUT)

    async def get(self) -> tuple[int, int]:
        r = await self.client.get(self.url, headers=self.headers)
        return r.status_code, len(r.content)

    async def aclose(self) -> None:
        await self.client.aclose()


class AiohttpSession(Contender):
    name = "aiohttp ClientSession.get (no httpx)"
    path = "context"

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(url, headers)
        self.session: aiohttp.ClientSession | None = None

    async def get(self) -> tuple[int, int]:
        if self.session is None:  # made on the running loop
            connector = aiohttp.TCPConnector(limit=LIMITS.max_connections or 0)
            self.session = aiohttp.ClientSession(connector=connector)
        async with self.session.get(self.url, headers=self.headers) as r:
            return r.status, len(await r.read())

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()


CONTENDERS: tuple[type[Contender], ...] = (
    Http1Forward,
    AiohttpRequest,
    Http1Client,
    AiohttpClient,
    AiohttpSession,
    HttpcoreClient,
)
PAIRS = (("router", Http1Forward, AiohttpRequest), ("client", Http1Client, AiohttpClient))


async def _one_at_a_time(get: Get, count: int) -> int:
    failed = 0
    for _ in range(count):
        status, size = await get()
        failed += status != 200 or size == 0
    return failed


async def _fan_out(get: Get, bursts: int) -> int:
    failed = 0
    for _ in range(bursts):
        for status, size in await asyncio.gather(*(get() for _ in range(BURST))):
            failed += status != 200 or size == 0
    return failed


WORKLOADS: dict[str, tuple[Callable[[Get, int], Awaitable[int]], int, int]] = {
    # name: (driver, its argument, requests it sends)
    "one at a time": (_one_at_a_time, SEQUENTIAL, SEQUENTIAL),
    "fan-out": (_fan_out, BURSTS, BURSTS * BURST),
}


async def _phase(contender: Contender, workload: str, server_pid: int) -> dict[str, float]:
    drive, argument, requests = WORKLOADS[workload]
    await _fan_out(contender.get, WARMUP // BURST)  # connections open, code paths warm
    server_before = cpu_seconds(server_pid)
    cpu_before, wall_before = time.process_time(), time.perf_counter()
    failed = await drive(contender.get, argument)
    wall = time.perf_counter() - wall_before
    cpu = time.process_time() - cpu_before
    server = cpu_seconds(server_pid) - server_before
    return {
        "requests": requests,
        "failed": failed,
        "req_s": requests / wall,
        "client_cpu_us": cpu / requests * 1e6,
        "server_cpu_us": server / requests * 1e6,
    }


async def _measure(url: str, headers: dict[str, str], server_pid: int) -> dict[str, Any]:
    contenders = [kind(url, headers) for kind in CONTENDERS]
    rounds: dict[str, dict[str, list[dict[str, float]]]] = {
        w: {c.name: [] for c in contenders} for w in WORKLOADS
    }
    try:
        for n in range(ROUNDS):
            order = contenders[n % len(contenders) :] + contenders[: n % len(contenders)]
            for workload in WORKLOADS:
                for contender in order:
                    figures = await _phase(contender, workload, server_pid)
                    rounds[workload][contender.name].append(figures)
    finally:
        for contender in contenders:
            with contextlib.suppress(Exception):
                await contender.aclose()
    return {
        workload: {
            c.name: {"path": c.path, **_median(rounds[workload][c.name])} for c in contenders
        }
        for workload in WORKLOADS
    }


def _median(runs: list[dict[str, float]]) -> dict[str, Any]:
    keys = ("req_s", "client_cpu_us", "server_cpu_us")
    median = {k: statistics.median(r[k] for r in runs) for k in keys}
    return {
        **median,
        "failed": sum(r["failed"] for r in runs),
        "req_s_rounds": [round(r["req_s"]) for r in runs],
        "client_cpu_us_rounds": [round(r["client_cpu_us"], 1) for r in runs],
    }


def _ratios(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Ours against the anchor, round by round (their phases ran minutes apart at most,
    under the same background), then the median of those ratios."""
    out = []
    for workload, by_name in figures.items():
        for path, ours, anchor in PAIRS:
            mine, theirs = by_name[ours.name], by_name[anchor.name]
            cpu = statistics.median(
                t / m for m, t in zip(mine["client_cpu_us_rounds"], theirs["client_cpu_us_rounds"])
            )
            rate = statistics.median(
                m / t for m, t in zip(mine["req_s_rounds"], theirs["req_s_rounds"])
            )
            out.append(
                {
                    "workload": workload,
                    "path": path,
                    "cpu_ratio": cpu,
                    "req_s_ratio": rate,
                    "goal_met": cpu >= GOAL and rate >= REQ_S_FLOOR,
                }
            )
    return out


def run(settings: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="edgefed-bench-http-client-") as tmp:
        with pinned_children(SERVER_CPU):
            site = SiteProcess(
                name="Peer",
                data_dir=Path(tmp) / "peer",
                extra_config='log_level = "warning"\n',
            ).start()
        before = os.sched_getaffinity(0) if can_pin() else None
        try:
            assert site.proc is not None
            token = password_token(site.url)
            with httpx.Client(base_url=site.url, headers={"X-Auth-Token": token}) as c:
                for i in range(IMAGES):
                    c.post(
                        "/image/v2/images",
                        json={"name": f"bench-{i}", "disk_format": "raw"},
                    ).raise_for_status()
            headers = {
                "X-Auth-Token": token,
                "Accept": "application/json",
                "User-Agent": "edgefed-router",
                "X-Openstack-Request-Id": "req-00000000-0000-4000-8000-000000000000",
            }
            if before is not None:
                os.sched_setaffinity(0, {LOADGEN_CPU})
            figures = uvloop.run(_measure(site.url + PATH, headers, site.proc.pid))
        finally:
            if before is not None:
                os.sched_setaffinity(0, before)
            site.stop()
    return {
        "rounds": ROUNDS,
        "burst": BURST,
        "pinned": before is not None,
        "figures": figures,
        "ratios": _ratios(figures),
        "goal": GOAL,
        "req_s_floor": REQ_S_FLOOR,
    }


def render(results: dict[str, Any]) -> str:
    lines = [
        "inter-site HTTP client: api/http1.py against httpx on aiohttp "
        f"(one real site on loopback, GET {PATH}; median of {results['rounds']} "
        "alternating rounds)",
    ]
    for workload, by_name in results["figures"].items():
        one = workload == "one at a time"
        shape = "one request in flight" if one else f"bursts of {results['burst']}"
        lines.append(f"{workload} ({shape}):")
        lines.append(
            f"  {'client':<50} {'req/s':>7} {'client CPU us/req':>18} {'server CPU us/req':>18}"
            "  failed"
        )
        for name, row in by_name.items():
            lines.append(
                f"  {name:<50} {row['req_s']:>7,.0f} {row['client_cpu_us']:>18.1f} "
                f"{row['server_cpu_us']:>18.1f}  {row['failed']:>6}"
            )
    lines.append(
        f"ratios, http1 against aiohttp, median of the rounds' ratios (goal: >= "
        f"{results['goal']}x less client CPU per request, req/s >= "
        f"{results['req_s_floor']}x):"
    )
    for r in results["ratios"]:
        lines.append(
            f"  {r['workload']:<14} {r['path']:<7} client CPU {r['cpu_ratio']:.2f}x less, "
            f"req/s {r['req_s_ratio']:.2f}x  {'PASS' if r['goal_met'] else 'MISS'}"
        )
    return "\n".join(lines)
