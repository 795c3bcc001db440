"""Anti-entropy: every few seconds each site swaps its registry with some peers.

Each exchange is a signed POST; the answer carries the peer's registry and its
measured RTTs, so registries converge after a partition heals, revocations reach
every site, and each site learns the fleet's RTT matrix (for ``around()`` scopes and
the health view). A site that was given a join token keeps trying to join, with
capped backoff, until its issuer answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

import httpx
import orjson

from edgefed.core.errors import EdgefedError
from edgefed.core.fleet import SiteEntry
from edgefed.services.sites.enrollment import EnrollmentToken
from edgefed.services.sites.registry import Registry

log = logging.getLogger("edgefed.gossip")

GOSSIP_PATH = "/edge/v1/fleet/gossip"
MAX_FANOUT = 8
JOIN_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)


def gossip_body(registry: Registry) -> bytes:
    view = registry.view
    return orjson.dumps(
        {
            "sites": [e.to_json() for e in registry.entries()],
            "rtt": view.rtt.get(registry.ctx.name, {}),
        }
    )


async def exchange(registry: Registry, peer: SiteEntry, *, timeout: float) -> bool:
    body = gossip_body(registry)
    headers = {
        "content-type": "application/json",
        **registry.signed_headers("POST", GOSSIP_PATH, body),
    }
    started = time.perf_counter()
    try:
        response = await registry.ctx.http.post(
            peer.endpoint + GOSSIP_PATH, content=body, headers=headers, timeout=timeout
        )
    except httpx.HTTPError as exc:
        log.debug("gossip with %s failed: %s", peer.name, exc)
        return False
    rtt_ms = (time.perf_counter() - started) * 1000.0
    if response.status_code != 200:
        log.debug("gossip with %s answered %s", peer.name, response.status_code)
        return False
    registry.note_seen(peer.name, rtt_ms)
    try:
        payload = response.json()
        entries = [SiteEntry.from_json(raw) for raw in payload.get("sites", [])]
        rtt = payload.get("rtt") or {}
        registry.view.rtt[peer.name] = {str(k): float(v) for k, v in rtt.items()}
    except (ValueError, TypeError, AttributeError, EdgefedError) as exc:
        log.warning("gossip answer from %s is malformed: %s", peer.name, exc)
        return False
    await registry.merge(entries)
    return True


def pick_peers(registry: Registry) -> list[SiteEntry]:
    peers = [e for e in registry.entries() if e.active and e.name != registry.ctx.name]
    if len(peers) <= MAX_FANOUT:
        return peers
    return random.sample(peers, MAX_FANOUT)


async def gossip_round(registry: Registry) -> int:
    interval = registry.ctx.settings.gossip_interval_seconds
    timeout = max(1.0, min(5.0, interval * 2))
    peers = pick_peers(registry)
    results = await asyncio.gather(*(exchange(registry, p, timeout=timeout) for p in peers))
    return sum(results)


async def join_until_done(registry: Registry, token: EnrollmentToken) -> None:
    for attempt in range(10_000):
        if token.issuer in registry.view.entries:
            return
        try:
            await registry.join_with(token)
            return
        except EdgefedError as exc:
            delay = JOIN_BACKOFF[min(attempt, len(JOIN_BACKOFF) - 1)]
            log.warning(
                "joining through %s failed (%s); retrying in %.0fs",
                token.issuer,
                exc.message,
                delay,
            )
            await asyncio.sleep(delay * (0.8 + 0.4 * random.random()))


async def run_gossip(registry: Registry) -> None:
    token_text = registry.ctx.settings.join_token
    if token_text:
        await join_until_done(registry, EnrollmentToken.decode(token_text))
    interval = registry.ctx.settings.gossip_interval_seconds
    while True:
        with contextlib.suppress(EdgefedError):
            await gossip_round(registry)
        await asyncio.sleep(interval * (0.75 + 0.5 * random.random()))
