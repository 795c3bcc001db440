"""Anti-entropy: every few seconds each site compares its registry with some peers.

Each exchange is a signed POST carrying a *digest* of the sender's registry (each
site's entry version and whether it is revoked) and the sender's measured RTTs. The
peer answers with the entries the sender lacks or holds older, the names it wants in
return, and its own RTTs; when it wants some, the sender pushes them in a second POST.
Registries thus converge after a partition heals and revocations reach every site,
while a fleet in agreement exchanges digests only: a registry of a thousand sites is
~400 KB of JSON, its digest ~25 KB, and most rounds find nothing to send. Each site
also learns the fleet's RTT matrix (for ``around()`` scopes and the health view).

A request without a digest (the push above) is answered with what the sender pushed
merged and nothing else wanted. A site that was given a join token keeps trying to
join, with capped backoff, until its issuer answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Iterable, Sequence
from typing import Any

import httpx
import orjson

from edgefed.core.errors import EdgefedError
from edgefed.core.fleet import MAX_VERSION, SiteEntry
from edgefed.core.fleet_rules import EntryState, state_of, supersedes
from edgefed.services.sites.enrollment import EnrollmentToken
from edgefed.services.sites.registry import Registry
from edgefed.services.sites.revocations import parse_digest as parse_revocation_digest

log = logging.getLogger("edgefed.gossip")

GOSSIP_PATH = "/edge/v1/fleet/gossip"
MAX_FANOUT = 3  # peers per round; push-pull converges in O(log N) rounds even at 1
JOIN_BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)


Digest = dict[str, EntryState]  # name -> (enrolled at, revoked, version)
MAX_DIGEST = 100_000


def digest_of(entries: Iterable[SiteEntry]) -> Digest:
    return {e.name: state_of(e) for e in entries}


def parse_digest(raw: Any) -> Digest:
    """A digest from the wire: ``{name: [enrolled_at, revoked, version]}``; ValueError if
    malformed."""
    if not isinstance(raw, dict) or len(raw) > MAX_DIGEST:
        raise ValueError("the digest must be an object")
    out: Digest = {}
    for name, value in raw.items():
        if (
            not isinstance(value, list)
            or len(value) != 3
            or isinstance(value[0], bool)
            or not isinstance(value[0], int | float)
            or not math.isfinite(value[0])
            or not isinstance(value[1], bool)
            or isinstance(value[2], bool)
            or not isinstance(value[2], int)
            or not 0 <= value[2] <= MAX_VERSION
        ):
            raise ValueError(
                f"digest entry {str(name)[:64]!r} must be [enrolled_at, revoked, version]"
            )
        out[str(name)] = (float(value[0]), value[1], value[2])
    return out


def diff(entries: Iterable[SiteEntry], digest: Digest) -> tuple[list[SiteEntry], list[str]]:
    """Against a peer's digest: the entries it lacks or holds older, and the names it
    holds newer than ``entries`` (or that ``entries`` lack)."""
    mine = list(entries)
    own = digest_of(mine)
    give = [e for e in mine if supersedes(own[e.name], digest.get(e.name))]
    want = [name for name, state in digest.items() if supersedes(state, own.get(name))]
    return give, want


def _rtt_of(registry: Registry) -> dict[str, float]:
    return registry.view.rtt.get(registry.ctx.name, {})


def note_rtt(registry: Registry, site: str, payload: dict[str, Any]) -> None:
    """Keep the RTTs ``site`` measured, as its gossip (request or answer) carries them;
    ValueError, TypeError or AttributeError if they are malformed."""
    rtt = payload.get("rtt") or {}
    if len(rtt) > MAX_DIGEST:
        raise ValueError("too many RTTs")
    measured = {str(k): float(v) for k, v in rtt.items() if k in registry.view.entries}
    if not all(math.isfinite(v) and 0.0 <= v < 3_600_000.0 for v in measured.values()):
        raise ValueError("RTTs must be finite, non-negative milliseconds")
    registry.view.rtt[site] = measured


def request_body(
    registry: Registry,
    *,
    push: list[SiteEntry] | None = None,
    events: list[dict[str, Any]] | None = None,
) -> bytes:
    """A digest request, or (``push``/``events``) the push that follows an answer."""
    if push is not None or events is not None:
        return orjson.dumps(
            {
                "sites": [e.to_json() for e in push or ()],
                "revocation_events": events or [],
                "rtt": _rtt_of(registry),
            }
        )
    digest = {name: list(state) for name, state in digest_of(registry.entries()).items()}
    return orjson.dumps(
        {
            "digest": digest,
            "revocations": registry.ctx.revocations.digest(),
            "rtt": _rtt_of(registry),
        }
    )


def answer_body(
    registry: Registry, digest: Digest | None, revocations: dict[str, int] | None = None
) -> bytes:
    """The answer to a gossip request: what the sender lacks (entries, revocation
    events), what this site wants, and this site's revocation digest."""
    if digest is None:
        return orjson.dumps({"sites": [], "want": [], "rtt": _rtt_of(registry)})
    give, want = diff(registry.entries(), digest)
    return orjson.dumps(
        {
            "sites": [e.to_json() for e in give],
            "want": want,
            "revocation_events": registry.feed.missing_for(revocations or {}),
            "revocations": registry.ctx.revocations.digest(),
            "rtt": _rtt_of(registry),
        }
    )


async def _post(
    registry: Registry, peer: SiteEntry, body: bytes, timeout: float
) -> dict[str, Any] | None:
    headers = {
        "content-type": "application/json",
        **registry.signed_headers(peer.name, "POST", GOSSIP_PATH, body),
    }
    started = time.perf_counter()
    try:
        response = await registry.ctx.http.post(
            peer.endpoint + GOSSIP_PATH, content=body, headers=headers, timeout=timeout
        )
    except httpx.HTTPError as exc:
        log.debug("gossip with %s failed: %s", peer.name, exc)
        return None
    rtt_ms = (time.perf_counter() - started) * 1000.0
    if response.status_code != 200:
        log.debug("gossip with %s answered %s", peer.name, response.status_code)
        return None
    registry.note_seen(peer.name, rtt_ms)
    try:
        payload = response.json()
        if not isinstance(payload, dict):
            raise ValueError("the answer is not an object")
        note_rtt(registry, peer.name, payload)
    except (ValueError, TypeError, AttributeError) as exc:
        log.warning("gossip answer from %s is malformed: %s", peer.name, exc)
        return None
    return payload


async def exchange(registry: Registry, peer: SiteEntry, *, timeout: float) -> bool:
    payload = await _post(registry, peer, request_body(registry), timeout)
    if payload is None:
        return False
    try:
        entries = [SiteEntry.from_json(raw) for raw in payload.get("sites") or []]
        want = {str(name) for name in payload.get("want") or []}
        theirs = parse_revocation_digest(payload.get("revocations"))
        if entries:
            await registry.merge(entries)
        await registry.feed.accept(payload.get("revocation_events"))
    except (ValueError, TypeError, AttributeError, EdgefedError) as exc:
        log.warning("gossip answer from %s refused: %s", peer.name, exc)
        return False
    registry.ctx.revocations.note_synced()
    push = [e for e in registry.entries() if e.name in want] if want else []
    events = registry.feed.missing_for(theirs) if "revocations" in payload else []
    if push or events:
        body = request_body(registry, push=push, events=events)
        return await _post(registry, peer, body, timeout) is not None
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


async def join_until_done(
    registry: Registry, token: EnrollmentToken, *, backoff: Sequence[float] = JOIN_BACKOFF
) -> None:
    """Join through the token's issuer, retrying with ``backoff`` (the last delay
    repeats, jittered) until it answers; at once if this site knows the issuer."""
    for attempt in range(10_000):
        if token.issuer in registry.view.entries:
            return
        try:
            await registry.join_with(token)
            return
        except EdgefedError as exc:
            delay = backoff[min(attempt, len(backoff) - 1)]
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
        await registry.feed.prune_if_due()
        await asyncio.sleep(interval * (0.75 + 0.5 * random.random()))
