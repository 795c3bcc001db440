"""What the sync tests share: a fake clock, a site's engine, a create through the API,
and the peer a push worker talks to (an httpx ``MockTransport`` handler)."""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable
from typing import Any

import httpx

from edgefed.store.sync import OutboxEntry, SyncRepository, delivery_rank
from edgefed.sync.backoff import Backoff
from edgefed.sync.breaker import Breaker
from edgefed.sync.delivery import PeerWorker
from edgefed.sync.payloads import PayloadCache
from edgefed.sync.settler import Settler
from edgefed.sync.state import SyncEngine
from edgefed.testkit.inprocess import InProcessSite

Answer = Callable[[list[dict[str, Any]]], httpx.Response]


class FakeClock:
    """Seconds that pass only when a test moves ``now``."""

    def __init__(self, now: float = 10_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def engine_of(site: InProcessSite) -> SyncEngine:
    return site.app.state.ctx.slots.require(SyncEngine)


async def create(site: InProcessSite, headers: dict[str, str], path: str, body: Any) -> Any:
    """POST ``body`` to ``path``; the answer's document (the call must succeed)."""
    r = await site.client.post(path, json=body, headers=headers)
    assert r.status_code in (200, 201), r.text
    return r.json()


class Denver:
    """The receiving site: what it got, and how it answers each push."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.pushes: list[list[dict[str, Any]]] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/edge/v1/sync/push"
        items = json.loads(request.content)["items"]
        self.pushes.append(items)
        return self.answer(items)


def each(verdict: str | Callable[[dict[str, Any]], dict[str, Any]]) -> Answer:
    """An answer giving every item ``verdict`` (a status, or a function of the item)."""

    def result(item: dict[str, Any]) -> dict[str, Any]:
        if callable(verdict):
            return verdict(item)
        return {"kind": item["kind"], "key": item["key"], "status": verdict}

    return lambda items: httpx.Response(200, json={"results": [result(i) for i in items]})


async def queue(repo: SyncRepository, *refs: tuple[str, str], op: str = "upsert") -> None:
    """Queue ``refs`` (kind, key) for Denver at their current versions."""
    versions = await repo.versions_of(refs)
    entries = [
        OutboxEntry(
            "Denver", kind, key, versions[(kind, key)][0] or 1, op, rank=delivery_rank(kind, op)
        )
        for kind, key in refs
    ]
    await repo.enqueue(entries, now=0.0, force=False)


def worker_for(
    site: InProcessSite,
    repo: SyncRepository,
    denver: Denver,
    clock: FakeClock,
    *,
    threshold: int = 2,
    batch_size: int = 10,
) -> PeerWorker:
    """Berlin's push worker for Denver: backoff 10 then 20 s without jitter, a breaker
    opening after ``threshold`` failures for 30 s; f0 is forwarded on to Lyon and Nice."""
    ctx = dataclasses.replace(
        site.app.state.ctx,
        http=httpx.AsyncClient(transport=httpx.MockTransport(denver.handle)),
        peers={"Denver": "http://denver.test"},
        clock=clock,
    )
    return PeerWorker(
        ctx=ctx,
        repo=repo,
        target="Denver",
        backoff=Backoff((10.0, 20.0), jitter=0.0),
        breaker=Breaker(threshold=threshold, cooldown=30.0, clock=clock),
        batch_size=batch_size,
        concurrency=1,
        forwarded_targets=lambda kind, key: "Lyon,Nice" if key == "f0" else None,
        settler=Settler(repo),
        payloads=PayloadCache(),
        rng=random.Random(1),
    )


async def states(repo: SyncRepository) -> dict[str, tuple[str, int, float]]:
    """Denver's outbox rows by key: (state, attempts, next attempt)."""
    return {
        str(r["key"]): (str(r["state"]), int(r["attempts"]), float(r["next_at"]))
        for r in await repo.entries(target="Denver", limit=100)
    }
