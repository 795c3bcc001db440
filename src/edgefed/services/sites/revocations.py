"""Spreading revocation events through the fleet: pushed at once, gaps filled by gossip.

A site that makes an event (a token revoked, a user disabled, a role removed, an
application credential deleted) pushes it at once to every active peer, in parallel:
one signed POST each, so every online site holds it about one RTT later. A site that
missed a push (cut off, restarting) catches up through gossip, which carries each
site's per-origin watermark (``RevocationList.digest``): a peer answers with what the
sender lacks, and the sender pushes back what the peer lacks. Every exchange that
completes marks this site as caught up (``RevocationList.note_synced``).

Events are verified one by one (signed by their origin's pinned key, well-formed, the
origin's tokens only) and a batch is taken whole or not at all.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

import httpx
import orjson

from edgefed.api.context import SiteContext
from edgefed.api.sitecalls import signed_headers
from edgefed.core.errors import ValidationFailed
from edgefed.core.revocation import MAX_SEQ, RevocationEvent
from edgefed.store.revocations import RevocationRepository

log = logging.getLogger("edgefed.revocations")

GOSSIP_PATH = "/edge/v1/fleet/gossip"
PUSH_CONCURRENCY = 32
PUSH_TIMEOUT = 5.0
# Events per gossip answer or push (a peer far behind catches up over a few rounds).
BATCH_LIMIT = 2000
MAX_ORIGINS = 100_000
PRUNE_EVERY = 3600.0
PRUNE_SLACK = 86400.0


def parse_digest(raw: Any) -> dict[str, int]:
    """A revocation digest from the wire: ``{origin: watermark}``; ValueError if bad."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or len(raw) > MAX_ORIGINS:
        raise ValueError("the revocation digest must be an object")
    out: dict[str, int] = {}
    for origin, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEQ:
            raise ValueError(f"revocation digest entry {str(origin)[:64]!r} must be a number")
        out[str(origin)] = value
    return out


class RevocationFeed:
    def __init__(self, ctx: SiteContext):
        self.ctx = ctx
        self.repo = RevocationRepository(ctx.store)
        self._tasks: set[asyncio.Task[None]] = set()
        self._pruned_at = ctx.clock()
        ctx.revocations.listeners.append(self.publish)

    async def prune_if_due(self) -> int:
        """Once every ``PRUNE_EVERY`` seconds, forget the events no unexpired token can
        match (a token lives at most ``token_ttl_seconds``; a day of slack for clocks)."""
        now = self.ctx.clock()
        if now - self._pruned_at < PRUNE_EVERY:
            return 0
        self._pruned_at = now
        horizon = now - self.ctx.settings.token_ttl_seconds - PRUNE_SLACK
        await self.repo.prune(dt.datetime.fromtimestamp(horizon, dt.UTC))
        return self.ctx.revocations.prune(horizon)

    # ---- receiving ----------------------------------------------------------------------

    async def accept(self, raw: Any) -> int:
        """Check every event of a batch from another site, then store and apply the new
        ones; ValidationFailed (nothing kept) if any is forged or malformed."""
        if raw is None:
            return 0
        if not isinstance(raw, list) or len(raw) > BATCH_LIMIT:
            raise ValidationFailed(
                f"revocation events come as a list of at most {BATCH_LIMIT}", field="events"
            )
        revocations = self.ctx.revocations
        fresh: list[RevocationEvent] = []
        for item in raw:
            event = RevocationEvent.from_json(item)
            origin = event.origin
            assert origin is not None and event.seq is not None
            if event.issuer not in (None, origin):
                raise ValidationFailed(
                    f"an event of {origin} revokes tokens of {origin} only, not of {event.issuer}",
                    field="issuer",
                )
            if origin == self.ctx.name:
                continue  # this site's own: held, or pruned as expired
            key = self.ctx.keyring.lookup(origin)
            if key is None:
                continue  # an origin no longer (or not yet) in the fleet: its tokens fail anyway
            event.verify(key)
            if not revocations.holds(origin, event.seq):
                fresh.append(event)
        stored = await self.repo.add_foreign(fresh)
        for event in stored:
            revocations.add(event)
        return len(stored)

    # ---- answering ----------------------------------------------------------------------

    def missing_for(self, digest: Mapping[str, int]) -> list[dict[str, Any]]:
        events = self.ctx.revocations.missing_for(digest, limit=BATCH_LIMIT)
        return [e.to_json() for e in events]

    def lacks_nothing(self, digest: Mapping[str, int]) -> bool:
        """Whether a peer with ``digest`` holds nothing this site lacks."""
        mine = self.ctx.revocations.digest()
        return all(mine.get(origin, 0) >= seq for origin, seq in digest.items())

    # ---- pushing ------------------------------------------------------------------------

    def publish(self, event: RevocationEvent) -> None:
        """Push an event this site just made to every active peer (in the background)."""
        try:
            task = asyncio.get_running_loop().create_task(self._push(event))
        except RuntimeError:
            return  # no loop (a tool outside the site): gossip spreads it
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _push(self, event: RevocationEvent) -> None:
        body = orjson.dumps({"revocation_events": [event.to_json()]})
        peers = dict(self.ctx.peers)
        gate = asyncio.Semaphore(PUSH_CONCURRENCY)

        async def one(name: str, url: str) -> None:
            headers = {
                "content-type": "application/json",
                **signed_headers(self.ctx, target=name, method="POST", path=GOSSIP_PATH, body=body),
            }
            async with gate:
                try:
                    r = await self.ctx.http.post(
                        url + GOSSIP_PATH, content=body, headers=headers, timeout=PUSH_TIMEOUT
                    )
                except httpx.HTTPError as exc:
                    log.debug("revocation push to %s failed: %s", name, exc)
                    return
            if r.status_code != 200:
                log.info("revocation push to %s answered %s", name, r.status_code)

        await asyncio.gather(*(one(n, u) for n, u in peers.items()))

    async def drain(self) -> None:
        """Wait for the pushes under way (tests, and a clean stop)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
