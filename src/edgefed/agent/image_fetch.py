"""An image's data fetched from the site by an agent on another machine.

The agent cannot read the site's files there, so it streams the image over its
authenticated channel and checks the sha256 the site recorded as the bytes arrive; a
partial or mismatched file is removed, never left for a spawn to use.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from pathlib import Path

import httpx

from edgefed.drivers.base import ImageData


class ImageUnavailable(Exception):
    """The site refused the image, or sent bytes that do not match its checksum."""


async def download_image(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    image: ImageData,
    directory: Path,
) -> Path:
    """A new file in ``directory`` with the image's data, checked against its sha256."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = directory / f"{image.id}.{uuid.uuid4().hex}.part"
    digest = hashlib.sha256()
    try:
        async with client.stream("GET", url, headers=headers, timeout=None) as r:
            if r.status_code != 200:
                raise ImageUnavailable(f"the site refused image {image.id} ({r.status_code})")
            with target.open("wb") as out:
                async for chunk in r.aiter_bytes(1 << 20):
                    digest.update(chunk)
                    await asyncio.to_thread(out.write, chunk)
        expected = (image.checksum or "").removeprefix("sha256:")
        if expected and digest.hexdigest() != expected:
            raise ImageUnavailable(
                f"image {image.id} from the site does not match its sha256 "
                f"(expected {expected[:16]}…, got {digest.hexdigest()[:16]}…)"
            )
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return target
