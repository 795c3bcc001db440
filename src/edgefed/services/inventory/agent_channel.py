"""The command channel's routes for host agents, under ``/edge/v1/hosts/agent``.

An agent authenticates every call with its host credential (``X-Host-Credential``)
and only ever sees its own host's share: the commands queued for it (a long poll,
``POST /agent/commands``), its answers (``POST /agent/commands/{id}``: 404 for a
command that is not its own open one, which then stays as it was), what it reports
of its guests (``POST /agent/guests``) and its network plan (``GET /agent/network``,
with an ETag) and the data of the images its servers boot from
(``GET /agent/images/{id}``, for agents on other machines than the site's), and the
NBD export of a volume attached to one of its servers whose file it cannot read
(``POST /agent/volumes/{id}/export``, the same agents). The queue
is ``SiteContext.host_commands`` (api/hostcommands.py).
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from edgefed.api.context import SiteContext, site_context
from edgefed.api.hostcommands import GuestReport, HostCommandQueue
from edgefed.api.responses import Json
from edgefed.api.service import DeclaredRoute
from edgefed.core.errors import NotFound, Unavailable
from edgefed.services.inventory.operations import CREDENTIAL_HEADER, HostInventory
from edgefed.store.inventory import HostRecord

if TYPE_CHECKING:
    from edgefed.store.compute import ServerRecord

router = APIRouter(route_class=DeclaredRoute)
# Nova's power state RUNNING (drivers.base.PowerState), as servers record it.
POWER_RUNNING = 1


class PollRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    wait: float = Field(default=20.0, ge=0, le=300)
    # The agent lost what it had been sent (it restarted): send it again.
    restarted: bool = False


class AnswerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    result: dict[str, Any] | None = None
    error: str | None = Field(default=None, max_length=4000)


class GuestsReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    guests: dict[str, int] = Field(default_factory=dict, max_length=4096)
    full: bool = False
    facts: dict[str, Any] = Field(default_factory=dict, max_length=64)


def queue_of(ctx: SiteContext) -> HostCommandQueue:
    if ctx.host_commands is None:
        raise Unavailable("The host command channel is not running yet.")
    return ctx.host_commands


async def _agent(request: Request) -> tuple[SiteContext, HostRecord]:
    ctx = site_context(request)
    host = await HostInventory(ctx).authenticate_agent(request.headers.get(CREDENTIAL_HEADER))
    return ctx, host


@router.post("/agent/commands")
async def poll_commands(body: PollRequest, request: Request) -> Json:
    ctx, host = await _agent(request)
    queue = queue_of(ctx)
    wait = min(body.wait, ctx.settings.agent_poll_wait_seconds)
    found = await queue.poll(host=host.hostname, wait=wait, restarted=body.restarted)
    return Json(
        {
            "site_instance": queue.instance,
            "commands": [
                {"id": c.id, "kind": c.kind, "server_id": c.server_id, "payload": c.payload}
                for c in found
            ],
        }
    )


@router.post("/agent/commands/{command_id}", status_code=204)
async def answer_command(command_id: str, body: AnswerRequest, request: Request) -> Response:
    ctx, host = await _agent(request)
    record = await queue_of(ctx).answer(
        host=host.hostname, command_id=command_id, result=body.result, error=body.error
    )
    if record is None:
        raise NotFound(f"Host {host.hostname} has no open command {command_id}.")
    return Response(status_code=204)


@router.post("/agent/guests", status_code=204)
async def report_guests(body: GuestsReport, request: Request) -> Response:
    ctx, host = await _agent(request)
    await queue_of(ctx).report(
        GuestReport(host=host.hostname, guests=body.guests, full=body.full, facts=body.facts)
    )
    return Response(status_code=204)


@router.get("/agent/guests")
async def intended_guests(request: Request) -> Json:
    """What the site records of this host's guests, for an agent whose host booted:
    ``running``, the servers it expects running (ACTIVE, powered on, no operation under
    way); empty when ``resume_guests_on_host_boot`` is off. The agent starts those whose
    guest it finds powered off, and only those it has."""
    from edgefed.store.compute import ServerRepository

    ctx, host = await _agent(request)
    resume = ctx.settings.resume_guests_on_host_boot
    running = []
    if resume:
        running = sorted(
            s.id
            for s in await ServerRepository(ctx.store).list_all(project_id=None)
            if s.host == host.hostname
            and s.vm_state in ("active", "resized")
            and s.task_state is None
            and s.power_state == POWER_RUNNING
        )
    return Json({"resume_on_host_boot": resume, "running": running})


@router.get("/agent/network")
async def network_plan(request: Request) -> Response:
    # Here, not at the top: a site whose hosts never ask (the fake driver) loads none of it.
    from edgefed.drivers.agent_network import host_plan
    from edgefed.drivers.planwire import plan_to_json

    ctx, host = await _agent(request)
    doc = plan_to_json(await host_plan(ctx.store, host.hostname))
    body = json.dumps(doc, sort_keys=True).encode()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type="application/json", headers={"ETag": etag})


def export_grantee(server: ServerRecord, host: str) -> bool:
    """Whether ``host`` may have the server's data (its images, the NBD exports of its
    volumes): the server's own host, and the destination of its live migration while
    the move runs (and only then: the destination's QEMU opens them before the guest
    runs there)."""
    if server.host == host:
        return True
    migration = server.migration or {}
    return (
        server.task_state == "migrating"
        and migration.get("kind") == "live-migration"
        and migration.get("destination") == host
    )


@router.get("/agent/images/{image_id}")
async def image_data(image_id: str, request: Request) -> Response:
    """The data of an image a live server of this host boots from (its image, or that
    image's kernel_id or ramdisk_id), or a server moving here by live migration (its
    base image made again here); 404 for any other."""
    from starlette.responses import FileResponse

    from edgefed.store.compute import ServerRepository
    from edgefed.store.image import ImageRepository, blob_path

    ctx, host = await _agent(request)
    images = ImageRepository(ctx.store)
    wanted: set[str] = set()
    for server in await ServerRepository(ctx.store).list_all(project_id=None):
        if not export_grantee(server, host.hostname) or not server.image_id:
            continue
        wanted.add(server.image_id)
        booted = await images.get(server.image_id)
        if booted is not None:
            wanted.update(
                str(booted.properties[key])
                for key in ("kernel_id", "ramdisk_id")
                if booted.properties.get(key)
            )
    image = await images.get(image_id) if image_id in wanted else None
    if image is None or not image.blob_sha256:
        raise NotFound(f"Host {host.hostname} boots no image {image_id} with data here.")
    return FileResponse(
        blob_path(ctx.settings.data_dir, image),
        media_type="application/octet-stream",
        headers={"X-Image-Sha256": image.blob_sha256},
    )


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    server_id: str = Field(min_length=1, max_length=64)


@router.post("/agent/volumes/{volume_id}/export")
async def export_volume(volume_id: str, body: ExportRequest, request: Request) -> Json:
    """The NBD export (over TLS, with a key made for the attachment alone) of a volume
    that a server of this host holds, or of a server moving to this host by live
    migration (the attachment's one export, which the source may use as well); 404 for
    a volume no such server holds. An agent asks when it cannot read the volume's file
    (a host on another machine)."""
    from edgefed.store.compute import ServerRepository

    ctx, host = await _agent(request)
    server = await ServerRepository(ctx.store).get(body.server_id)
    if server is None or server.host is None or ctx.volumes is None:
        raise NotFound(f"Host {host.hostname} has no server {body.server_id}.")
    if not export_grantee(server, host.hostname):
        raise NotFound(f"Host {host.hostname} has no server {body.server_id}.")
    nbd = await ctx.volumes.export_to_host(
        volume_id=volume_id, server_id=server.id, host=server.host
    )
    return Json({"nbd": nbd})
