"""Helpers of the compute tests: an image to boot from, booting, a bounded status poller."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from edgefed.store.image import ImageRepository
from edgefed.testkit.inprocess import InProcessSite

V = {"OpenStack-API-Version": "compute 2.96"}


async def make_image(site: InProcessSite, **extra: Any) -> str:
    ctx = site.app.state.ctx
    values: dict[str, Any] = {
        "owner": None,
        "name": "cirros",
        "disk_format": "qcow2",
        "container_format": "bare",
        "visibility": "public",
        "data": b"fake disk image" * 64,
        "data_dir": site.settings.data_dir,
        **extra,
    }
    record = await ImageRepository(ctx.store).create(**values)
    return record.id


async def wait_for(
    site: InProcessSite, headers: dict[str, str], server_id: str, status: str, timeout: float = 10
) -> dict[str, Any]:
    """Poll the server until it has ``status`` (bounded); return its last view."""
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = await site.client.get(f"/compute/v2.1/servers/{server_id}", headers=headers)
        if status == "DELETED" and r.status_code == 404:
            return {}
        assert r.status_code == 200, r.text
        body = r.json()["server"]
        if body["status"] == status:
            return body
        await asyncio.sleep(0.01)
    raise AssertionError(f"server {server_id} never reached {status}: last {body.get('status')}")


async def boot(
    site: InProcessSite, headers: dict[str, str], image_id: str, **extra: Any
) -> dict[str, Any]:
    server = {"name": "vm", "imageRef": image_id, "flavorRef": "1", "networks": "auto", **extra}
    r = await site.client.post("/compute/v2.1/servers", json={"server": server}, headers=headers)
    assert r.status_code == 202, r.text
    return r.json()["server"]
