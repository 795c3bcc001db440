"""What the relocation and drain tests share (imported by name, not from a conftest)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from edgefed.services.compute import relocation_in
from edgefed.services.compute.relocation_out import Relocator
from edgefed.store.compute import RelocationRecord, Relocations
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

    def heal(self) -> None:
        """The links whole again, and no cut to come."""
        self.cut_after = None
        self.cut.clear()


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


async def relocate(
    at: InProcessSite, h: dict[str, str], server_id: str, site: str = "Paris", **how: Any
) -> Any:
    """The server's ``os-edge:relocate`` to ``site``; ``how``: the rest of the body (its
    ``mode``, its ``volumes``)."""
    body = {"os-edge:relocate": {"site": site, **how}}
    return await at.client.post(f"{C}/servers/{server_id}/action", json=body, headers=h)


async def journal(
    at: InProcessSite,
    h: dict[str, str],
    server_id: str,
    phase: str = "done",
    *,
    stop: Sequence[str] = ("failed",),
    within: float = 60,
) -> dict[str, Any]:
    """The server's last relocation as ``at`` shows it, once in ``phase`` (polled for
    ``within`` seconds); one in a phase of ``stop`` (other than ``phase``) fails the test
    at once."""
    found: dict[str, Any] = {}

    async def reached() -> bool:
        r = await at.client.get(f"{C}/servers/{server_id}/os-edge-relocations", headers=h)
        found.update(r.json()["relocations"][-1])
        assert found["phase"] == phase or found["phase"] not in stop, found
        return bool(found["phase"] == phase)

    await eventually(reached, within=within, every=0.01, what=f"the relocation {phase}")
    return found


async def moved(
    at: InProcessSite, h: dict[str, str], server_id: str, *, stop: Sequence[str] = ("failed",)
) -> dict[str, Any]:
    """``journal`` of the relocation done."""
    return await journal(at, h, server_id, "done", stop=stop)


async def outgoing_failed(
    site: InProcessSite, what: str = "the relocation failed"
) -> RelocationRecord:
    """The site's one outgoing relocation, once it failed (polled)."""
    relocations = Relocations(ctx_of(site).store)

    async def failed() -> bool:
        [record] = await relocations.list(direction="out")
        return record.phase == "failed"

    await eventually(failed, within=30, every=0.01, what=what)
    [record] = await relocations.list(direction="out")
    return record


def stall(relocator: Relocator) -> asyncio.Event:
    """The relocator's next wait (the link down) never ends, so that the test stops the
    site meanwhile; the event is set once it waits."""
    stalled = asyncio.Event()

    async def sleep(seconds: float) -> None:
        stalled.set()
        await asyncio.Event().wait()

    relocator.sleep = sleep
    return stalled


def hours_pass(relocator: Relocator) -> None:
    """Each wait of the relocator is an hour on its clock: a link down stays down past
    ``relocation_link_timeout_seconds``."""
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += 3600.0
        await asyncio.sleep(0)

    relocator.sleep, relocator.clock = sleep, lambda: now[0]


@dataclass
class Offer:
    """Paris's side of a move, offered there as Berlin would; the disk's chunks are the
    test's to put."""

    paris: InProcessSite
    path: str
    grant: dict[str, str]

    async def put(self, data: bytes, start: int, chunk: bytes | None = None) -> httpx.Response:
        """The chunk of ``data`` at ``start`` (4 MiB), or ``chunk`` in its place."""
        chunk = data[start : start + (4 << 20)] if chunk is None else chunk
        headers = {
            **self.grant,
            "Content-Range": f"bytes {start}-{start + len(chunk) - 1}/{len(data)}",
            relocation_in.CHUNK_SHA_HEADER: hashlib.sha256(chunk).hexdigest(),
        }
        return await self.paris.client.put(f"{self.path}/disk", content=chunk, headers=headers)


async def offer(paris: InProcessSite, h: dict[str, str], server_id: str, mode: str) -> Offer:
    """A move of ``server_id`` from Berlin in ``mode``, of a server of flavor 1 with a raw
    disk, offered to Paris."""
    flavor = (await paris.client.get(f"{C}/flavors/1", headers=h)).json()["flavor"]
    server = {"name": "shop", "flavor": flavor, "disk_format": "raw"}
    body = {"relocation": {"server_id": server_id, "source": "Berlin", "mode": mode,
                           "server": server}}  # fmt: skip
    r = await paris.client.post(f"{C}/os-edge/relocations", json=body, headers=h)
    assert r.status_code == 201, r.text
    return Offer(
        paris,
        path=f"{C}/os-edge/relocations/{r.json()['relocation']['id']}",
        grant={relocation_in.GRANT_HEADER: r.json()["relocation"]["grant"]},
    )
