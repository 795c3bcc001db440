"""What the relocation and drain tests share (imported by name, not from a conftest)."""

from __future__ import annotations

import os
from typing import Any

import httpx

from edgefed.store.image import ImageRepository
from edgefed.testkit.asgi_fleet import FleetTransport
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import ctx_of
from edgefed.testkit.wait import eventually

C = "/compute/v2.1"
NOVA = {"OpenStack-API-Version": "compute 2.96"}
DISK = os.urandom(9 << 20)  # three chunks of 4 MiB (the last one short)


class ChunkCounter(FleetTransport):
    """The fleet's links, counting the disk chunks sent; ``cut_after``: the link to
    Paris is cut once that many chunks went through."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks = 0
        self.cut_after: int | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT" and request.url.path.endswith("/disk"):
            if self.cut_after is not None and self.chunks >= self.cut_after:
                self.cut.add(request.url.host)
            if request.url.host not in self.cut:
                self.chunks += 1
        return await super().handle_async_request(request)


async def active_server(berlin: InProcessSite, h: dict[str, str], **extra: Any) -> str:
    image = await ImageRepository(ctx_of(berlin).store).create(
        owner=None, name="disk", disk_format="raw", container_format="bare",
        visibility="public", data=DISK, data_dir=berlin.settings.data_dir,
    )  # fmt: skip
    body = {"server": {"name": "shop", "imageRef": image.id, "flavorRef": "1",
                       "networks": "none", "metadata": {"till": "3"}, **extra}}  # fmt: skip
    r = await berlin.client.post(f"{C}/servers", json=body, headers=h)
    assert r.status_code == 202, r.text
    server_id = str(r.json()["server"]["id"])
    await status_is(berlin, h, server_id, "ACTIVE")
    return server_id


async def status_is(site: InProcessSite, h: dict[str, str], server_id: str, wanted: str) -> None:
    async def check() -> bool:
        r = await site.client.get(f"{C}/servers/{server_id}", headers=h)
        shown = r.json().get("server", {}) if r.status_code == 200 else {}
        assert shown.get("status") != "ERROR" or wanted == "ERROR", shown.get("fault")
        return bool(shown.get("status") == wanted)

    await eventually(check, within=30, every=0.01, what=f"{server_id} {wanted}")
