"""Request helpers shared by the image tests (upload data, send a JSON patch)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from edgefed.testkit.inprocess import InProcessSite


async def upload(
    site: InProcessSite, headers: dict[str, str], image_id: str, data: bytes, **extra: str
) -> httpx.Response:
    return await site.client.put(
        f"/image/v2/images/{image_id}/file",
        content=data,
        headers={**headers, "Content-Type": "application/octet-stream", **extra},
    )


PATCH = "application/openstack-images-v2.1-json-patch"


async def patch(
    site: InProcessSite, headers: dict[str, str], image_id: str, ops: Any
) -> httpx.Response:
    return await site.client.patch(
        f"/image/v2/images/{image_id}",
        content=json.dumps(ops),
        headers={**headers, "Content-Type": PATCH},
    )
