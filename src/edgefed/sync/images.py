"""Receiver side of images: pull each received image's blob from its source.

The metadata arrives by push; the data is pulled with ``GET /edge/v1/sync/blobs/<sha256>``
(signed) into ``images/.sync/<sha256>.part``. After a cut the next attempt asks for
``Range: bytes=<what we have>-`` and appends, so a large image over a bad link is
never fetched twice. The finished file must hash to the sha256 the source announced
before it is moved into the content-addressed blob store and the image turns active;
otherwise it is dropped and fetched again.

What a source sends is not trusted further than that: a blob name must be 64 lowercase
hex digits before it becomes a path (else ``../keys/signing.pem`` would be one); a
download stops, and its partial file goes, as soon as it passes the size the source
announced (at most ``max_image_bytes``), so a source cannot fill the disk; and the blob
and the directory entry of its rename are fsync'd before the image turns active.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import random
from pathlib import Path

import httpx

from edgefed.api.context import SiteContext
from edgefed.api.peer_transport import ANSWER_LIMIT
from edgefed.core.errors import EdgefedError
from edgefed.core.files import fsync_dir
from edgefed.store.image import BlobStore
from edgefed.store.sync import BlobFetches, Fetch, valid_sha256
from edgefed.sync.backoff import Backoff
from edgefed.sync.peers import signed_headers

log = logging.getLogger("edgefed.sync.images")

CHUNK = 1 << 20
IDLE_SECONDS = 10.0  # a safety net: recording a fetch wakes the fetcher at once
MALFORMED_RETRY_SECONDS = 86400.0  # a fetch record naming no blob: looked at once a day


class BlobTooLarge(ValueError):
    """The source sent more than the image's announced size (or this site's limit)."""


def blob_route(sha256: str) -> str:
    return f"/edge/v1/sync/blobs/{sha256}"


class BlobFetcher:
    def __init__(self, ctx: SiteContext, repo: BlobFetches, *, backoff: Backoff):
        self.ctx = ctx
        self.repo = repo
        self.backoff = backoff
        self.blobs = BlobStore(ctx.settings.data_dir)
        self.partial_dir = self.blobs.root / ".sync"
        self.wake = asyncio.Event()
        self.retry_at: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    def has_blob(self, sha256: str) -> bool:
        return valid_sha256(sha256) and self.blobs.path(sha256).is_file()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="sync-blobs")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            # Cleared before the look, not after it: a fetch recorded while the fetcher
            # looks (awaiting PostgreSQL) wakes it again at once.
            self.wake.clear()
            wait = IDLE_SECONDS
            try:
                now = self.ctx.clock()
                for fetch in await self.repo.pending_fetches():
                    due = self.retry_at.get(fetch.image_id, 0.0)
                    if due > now:
                        wait = min(wait, due - now)
                        continue
                    await self.fetch(fetch)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("image blob fetching failed; retrying")
            with contextlib.suppress(TimeoutError):
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
                async with asyncio.timeout(max(wait, 0.01)):
                    await self.wake.wait()

    async def fetch(self, fetch: Fetch) -> bool:
        if not valid_sha256(fetch.sha256):  # recorded before names were checked
            await self.repo.fetch_failed(fetch.image_id, "the blob name is not a sha256")
            self.retry_at[fetch.image_id] = self.ctx.clock() + MALFORMED_RETRY_SECONDS
            return False
        try:
            if not self.has_blob(fetch.sha256):
                await self._download(fetch)
        except (httpx.HTTPError, EdgefedError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.info("blob %s of image %s: %s", fetch.sha256[:12], fetch.image_id, error)
            await self.repo.fetch_failed(fetch.image_id, error)
            delay = self.backoff.delay(fetch.attempts + 1, rng=random.Random())
            self.retry_at[fetch.image_id] = self.ctx.clock() + delay
            return False
        await self.repo.fetch_done(fetch.image_id, sha256=fetch.sha256)
        self.retry_at.pop(fetch.image_id, None)
        return True

    def limit_of(self, fetch: Fetch) -> int:
        """How many bytes the blob of ``fetch`` may have."""
        most = self.ctx.settings.max_image_bytes
        return most if fetch.size is None else min(fetch.size, most)

    async def _download(self, fetch: Fetch) -> None:
        self.partial_dir.mkdir(parents=True, exist_ok=True)
        part = self.partial_dir / f"{fetch.sha256}.part"
        limit = self.limit_of(fetch)
        have = part.stat().st_size if part.exists() else 0
        if have > limit:
            part.unlink()
            have = 0
        path = blob_route(fetch.sha256)
        url = self._source_url(fetch.source) + path
        headers = signed_headers(self.ctx, target=fetch.source, method="GET", path=path, body=b"")
        if have:
            headers["Range"] = f"bytes={have}-"
        # Not cut off at the inter-site client's answer limit: this loop bounds it.
        unbounded = {ANSWER_LIMIT: None}
        async with self.ctx.http.stream(
            "GET", url, headers=headers, timeout=60.0, extensions=unbounded
        ) as r:
            if r.status_code == 416:
                have = 0
                part.unlink(missing_ok=True)
                raise ValueError("the source refused the range; starting over")
            if r.status_code not in (200, 206):
                raise ValueError(f"{fetch.source} answered {r.status_code} for the blob")
            mode = "ab" if r.status_code == 206 else "wb"
            size = have if r.status_code == 206 else 0
            try:
                with part.open(mode) as fh:
                    async for chunk in r.aiter_bytes():
                        size += len(chunk)
                        if size > limit:
                            raise BlobTooLarge(
                                f"{fetch.source} sent more than the {limit} bytes of the "
                                f"image's blob (its announced size, at most max_image_bytes); "
                                "dropped"
                            )
                        fh.write(chunk)
                    fh.flush()
                    os.fsync(fh.fileno())
            except BlobTooLarge:
                part.unlink(missing_ok=True)
                raise
        digest = await asyncio.to_thread(_sha256_of, part)
        if digest != fetch.sha256:
            part.unlink(missing_ok=True)
            raise ValueError(f"the blob hashes to {digest}, not {fetch.sha256}; fetching again")
        self.blobs.root.mkdir(parents=True, exist_ok=True)
        os.replace(part, self.blobs.path(fetch.sha256))
        fsync_dir(self.blobs.root)  # the rename survives a crash before the image is active

    def _source_url(self, source: str) -> str:
        url = self.ctx.peers.get(source)
        if url is None:
            raise ValueError(f"source {source} is not an active member of this fleet")
        return url.rstrip("/")


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
