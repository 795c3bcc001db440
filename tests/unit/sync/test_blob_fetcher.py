"""A receiver pulls a received image's blob from its source: resumed where a cut left
it, checked against the name the source gave it, bounded by the announced size, retried
after a backoff on the fake clock (the source is an httpx MockTransport)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sync_support import FakeClock

from edgefed.store.image import images
from edgefed.store.sync import Fetch, SyncReceiver, SyncRepository
from edgefed.sync import images as images_module
from edgefed.sync.backoff import Backoff
from edgefed.sync.images import MALFORMED_RETRY_SECONDS, BlobFetcher
from edgefed.sync.state import SyncEngine
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.wait import eventually

DATA = b"a disk image, not a large one " * 100
SHA = hashlib.sha256(DATA).hexdigest()
Handler = Callable[[httpx.Request], httpx.Response]


class Central:
    """The source: the requests it got, and how it answers the next one."""

    def __init__(self, answer: Handler) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)


def serve(data: bytes) -> Handler:
    """Central's blob route: the whole blob, or from the byte a Range asks for."""

    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == f"/edge/v1/sync/blobs/{SHA}"
        asked = request.headers.get("range")
        if asked is None:
            return httpx.Response(200, content=data)
        start = int(asked.removeprefix("bytes=").rstrip("-"))
        return httpx.Response(206, content=data[start:])

    return answer


@pytest.fixture
async def receiver(site: InProcessSite) -> tuple[InProcessSite, SyncRepository]:
    """Berlin holding an image received from Central whose blob it has not got yet."""
    await site.app.state.ctx.slots.require(SyncEngine).fetcher.stop()  # this test fetches
    when = "2026-01-01T00:00:00+00:00"
    row = {"id": "img", "name": "img", "status": "active", "size": len(DATA),
           "virtual_size": None, "disk_format": "raw", "container_format": "bare",
           "owner": None, "visibility": "public", "protected": False, "os_hidden": False,
           "min_disk": 0, "min_ram": 0, "checksum": None, "os_hash_algo": None,
           "os_hash_value": None, "blob_sha256": SHA, "properties": {}, "tags": [],
           "created_at": when, "updated_at": when}  # fmt: skip
    item = {"kind": "image", "key": "img", "version": 1, "op": "upsert", "row": row}
    outcome = await SyncReceiver(site.app.state.ctx.store, max_blob_bytes=1 << 20).apply_batch(
        source="Central", items=[item], has_blob=lambda _s: False, now=time.time()
    )
    assert outcome.results[0]["status"] == "applied"
    return site, SyncRepository(site.app.state.ctx.store)


def fetcher_for(
    site: InProcessSite, repo: SyncRepository, central: Central, clock: FakeClock
) -> BlobFetcher:
    ctx = dataclasses.replace(
        site.app.state.ctx,
        http=httpx.AsyncClient(transport=httpx.MockTransport(central.handle)),
        peers={"Central": "http://central.test"},
        clock=clock,
    )
    return BlobFetcher(ctx, repo, backoff=Backoff((7.0,), jitter=0.0))


async def image_status(site: InProcessSite) -> str:
    async with site.app.state.ctx.store.read() as conn:
        query = select(images.c.status).where(images.c.id == "img")
        return str((await conn.execute(query)).scalar())


async def the_fetch(repo: SyncRepository) -> Fetch:
    (fetch,) = await repo.pending_fetches()
    return fetch


async def test_a_cut_download_resumes_where_it_stopped(receiver: Any) -> None:
    site, repo = receiver
    central, clock = Central(serve(DATA)), FakeClock(5000.0)
    fetcher = fetcher_for(site, repo, central, clock)
    fetcher.partial_dir.mkdir(parents=True, exist_ok=True)
    (fetcher.partial_dir / f"{SHA}.part").write_bytes(DATA[:1000])  # what a cut left
    assert await image_status(site) == "queued"

    assert await fetcher.fetch(await the_fetch(repo))

    assert central.requests[0].headers["range"] == "bytes=1000-"
    assert fetcher.has_blob(SHA) and fetcher.blobs.path(SHA).read_bytes() == DATA
    assert not (fetcher.partial_dir / f"{SHA}.part").exists()
    assert await image_status(site) == "active"
    assert await repo.pending_fetches() == []


async def test_a_blob_that_is_not_what_it_was_called_is_dropped_and_fetched_again(
    receiver: Any,
) -> None:
    site, repo = receiver
    central, clock = Central(serve(DATA.upper())), FakeClock(5000.0)
    fetcher = fetcher_for(site, repo, central, clock)

    assert not await fetcher.fetch(await the_fetch(repo))

    failing = await the_fetch(repo)
    assert (failing.state, failing.attempts) == ("failing", 1)
    assert not fetcher.has_blob(SHA) and not (fetcher.partial_dir / f"{SHA}.part").exists()
    assert fetcher.retry_at["img"] == clock.now + 7.0
    assert await image_status(site) == "queued"  # never active on the wrong data
    central.answer = serve(DATA)
    assert await fetcher.fetch(failing) and await image_status(site) == "active"


async def test_a_source_sending_more_than_announced_is_cut_off(receiver: Any) -> None:
    site, repo = receiver
    central, clock = Central(serve(DATA + b"and then some more")), FakeClock(5000.0)
    fetcher = fetcher_for(site, repo, central, clock)

    assert not await fetcher.fetch(await the_fetch(repo))

    (row,) = await repo.fetch_states()
    assert "sent more than" in row["last_error"]
    assert not (fetcher.partial_dir / f"{SHA}.part").exists()


async def test_a_refused_range_starts_over(receiver: Any) -> None:
    site, repo = receiver
    central, clock = Central(lambda _r: httpx.Response(416)), FakeClock(5000.0)
    fetcher = fetcher_for(site, repo, central, clock)
    fetcher.partial_dir.mkdir(parents=True, exist_ok=True)
    (fetcher.partial_dir / f"{SHA}.part").write_bytes(b"stale bytes")
    assert not await fetcher.fetch(await the_fetch(repo))
    central.answer = serve(DATA)
    assert await fetcher.fetch(await the_fetch(repo))
    assert "range" not in central.requests[-1].headers


async def test_a_fetch_that_names_no_sha256_is_never_requested(receiver: Any) -> None:
    site, repo = receiver
    central, clock = Central(serve(DATA)), FakeClock(5000.0)
    fetcher = fetcher_for(site, repo, central, clock)
    bad = dataclasses.replace(await the_fetch(repo), sha256="../keys/signing.pem")

    assert not await fetcher.fetch(bad)

    assert central.requests == []
    assert fetcher.retry_at["img"] == clock.now + MALFORMED_RETRY_SECONDS


async def test_a_fetch_recorded_while_the_fetcher_looks_is_made_at_once(
    receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fetcher's look at its records awaits the database (PostgreSQL): a fetch
    recorded meanwhile wakes it, and the wake must not be lost to the idle timer (made
    an hour here). The first look is answered as if read before the record was made."""
    site, repo = receiver
    monkeypatch.setattr(images_module, "IDLE_SECONDS", 3600.0)
    fetcher = fetcher_for(site, repo, Central(serve(DATA)), FakeClock(5000.0))
    looking, answer = asyncio.Event(), asyncio.Event()
    pending_fetches = repo.pending_fetches

    async def late_pending_fetches() -> list[Fetch]:
        if not looking.is_set():
            looking.set()
            await answer.wait()
            return []
        return await pending_fetches()

    async def active() -> bool:
        return await image_status(site) == "active"

    monkeypatch.setattr(repo, "pending_fetches", late_pending_fetches)
    fetcher.start()
    try:
        await looking.wait()
        fetcher.wake.set()  # what recording a fetch does
        answer.set()
        await eventually(active, within=10, what="the blob fetched")
    finally:
        await fetcher.stop()
