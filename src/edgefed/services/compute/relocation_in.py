"""Relocation of a server from another site: the destination's side.

The source asks with the user's token (``POST /v2.1/os-edge/relocations``): the token
proves who the user is; this site decides, from what it holds, whether that user may
create the server here (a member of the project), and whether it can run it: a flavor
of the same shape, the networks the guest is on (by name, with its fixed IPs where they
are free), a disk format the hypervisor runs, the project's quota, a host with room.
Any mismatch is a 4xx naming it, before the source stops anything. What passes is
recorded with the server this site will create (the same id) and a **grant**: a random
secret returned once, of which only the sha256 is kept. The grant alone then authorises
that relocation's next steps, so a move outlives the user's token and a restart of
either side, and a stolen grant reaches nothing but that move:

- ``PUT …/{id}`` names the disk (size, sha256, format);
- ``PUT …/{id}/disk`` appends one chunk (``Content-Range``, ``X-Chunk-Sha256``), fsync'd
  before the answer; a chunk that starts before the file's end is a 409 telling where
  it ends, so a source that lost an answer, or restarted, resumes there; one that
  starts past it (the source keeps a few in flight) waits for those before it; the
  last one's answer waits for the whole file's sha256 (a mismatch: a 409 saying it
  starts again at 0);
- ``PUT …/{id}`` with ``{"delta": {size, sha256}}`` (a mild move, its disk whole): the
  move's second file, the layer of what the guest wrote while its disk was sent, which
  the chunks then go to; the commit joins it to the disk (the driver's ``join_layers``);
- ``GET …/{id}`` says how many bytes arrived and, once created, the server's status;
- ``POST …/{id}/commit`` checks the whole file's sha256, makes it a hidden image of the
  project (the file renamed into the image store; a cold move's digests as its chunks
  came, ``_Running``) and creates the server (same id) from it; asked again, it
  answers the same;
- ``POST …/{id}/done`` closes the move once the source removed its guest;
- ``DELETE …/{id}`` aborts: the partial disk goes, and a server that is not running yet.

An offer the source stops following up before its commit (the source lost, or its
operator gone) is dropped here after ``relocation_offer_ttl_seconds`` without a word
from it (``expire_offers``: at each offer, and every ``relocation_retry_seconds``):
its partial files and received volumes go, and the source, should it come back, is
told the move was aborted (a 409 on every step), undoes it and runs its guest again.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import hashlib
import hmac
import logging
import os
import re
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.policy import require_write
from edgefed.api.responses import Json
from edgefed.core.errors import BadRequest, Conflict, NotFound, PayloadTooLarge
from edgefed.core.ids import is_uuid, new_uuid
from edgefed.drivers.base import DriverError
from edgefed.services.compute.body import read_json, req_str, section
from edgefed.services.compute.boot_checks import RUNNABLE_DISK_FORMATS
from edgefed.services.compute.lookups import flavor_columns, flavor_doc
from edgefed.services.compute.microversion import MicroversionRoute
from edgefed.services.compute.quota_limits import check_server_quota
from edgefed.services.compute.relocation_parts import (
    arriving,
    boot_properties,
    drop_part_files,
    drop_received,
    held_images,
    named_parts,
    receive_volumes,
    split_parts,
    volumes_settled,
)
from edgefed.services.compute.scheduler import Request as HostRequest
from edgefed.services.compute.server_views import status_of
from edgefed.services.compute.servers import hostname_for
from edgefed.services.compute.state import ComputeState, compute_state
from edgefed.store.compute import FlavorRecord, RelocationRecord, Relocations
from edgefed.store.image import BlobInfo, BlobStore, PendingBlob
from edgefed.store.schema import utcnow

log = logging.getLogger("edgefed.compute.relocation")
router = APIRouter(route_class=MicroversionRoute)

PREFIX = "/v2.1/os-edge/relocations"
GRANT_HEADER = "X-Relocation-Grant"
CHUNK_SHA_HEADER = "X-Chunk-Sha256"
MAX_CHUNK = 16 << 20
RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")
# What a kept volume's NBD export must name (the source's volume/exports.py).
NBD_FIELDS = ("host", "port", "export", "tls_psk_identity", "tls_psk_key")


def digest(grant: str) -> str:
    return hashlib.sha256(grant.encode()).hexdigest()


# The phases in which chunks arrive: a cold move's disk, a mild one's disk then its
# layer of changes (``delta``).
RECEIVING = {"receiving": "base", "receiving-delta": "delta"}


def staging_path(state: ComputeState, relocation_id: str, part: str = "base") -> Path:
    name = f"{relocation_id}.in" if part == "base" else f"{relocation_id}.{part}.in"
    return state.ctx.settings.data_dir / "relocations" / name


def _receiving_path(state: ComputeState, record: RelocationRecord) -> Path:
    """The file the chunks go to now (the last one named)."""
    delta = record.phase == "receiving-delta" or "base" in record.details
    return staging_path(state, record.id, "delta" if delta else "base")


# -- the offer: checked with the user's token ---------------------------------------------


def _shape(flavor: dict[str, Any]) -> tuple[int, int, int, int, int]:
    try:
        return tuple(int(flavor.get(k) or 0) for k in ("vcpus", "ram", "disk", "ephemeral", "swap"))  # type: ignore[return-value]
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"Invalid flavor in the relocation: {flavor!r}") from exc


def _described(flavor: dict[str, Any]) -> str:
    vcpus, ram, disk, ephemeral, swap = _shape(flavor)
    return (
        f"{flavor.get('name')!s} ({vcpus} vCPU, {ram} MB RAM, {disk} GB disk, "
        f"{ephemeral} GB ephemeral, {swap} MB swap)"
    )


async def matching_flavor(
    state: ComputeState, principal: Principal, wanted: dict[str, Any]
) -> FlavorRecord:
    """The flavor of the same name and shape, else one of the same shape, that the
    caller may use here."""
    shape = _shape(wanted)
    usable = []
    for flavor in await state.flavors.list_all():
        if not flavor.is_public and not principal.is_admin:
            if principal.project_id not in await state.flavors.access_list(flavor.id):
                continue
        if (flavor.vcpus, flavor.ram, flavor.disk, flavor.ephemeral, flavor.swap) == shape:
            usable.append(flavor)
    usable.sort(key=lambda f: (f.name != wanted.get("name"), f.name))
    if not usable:
        raise BadRequest(
            f"Site {state.ctx.name} has no flavor like {_described(wanted)} for this project."
        )
    return usable[0]


async def mapped_networks(
    state: ComputeState, project_id: str, wanted: Any
) -> list[dict[str, str]] | str:
    """The guest's networks here, by name (the project's own or shared), with the fixed
    IP it had where no port here holds it; "none" for a guest without networks."""
    if not wanted:
        return "none"
    if not isinstance(wanted, list):
        raise BadRequest("Invalid networks in the relocation: a list is expected.")
    networks = [
        n for n in await state.networks.list_networks() if n.project_id == project_id or n.shared
    ]
    taken = {
        (port.network_id, fixed.ip_address)
        for port in await state.networks.list_ports()
        for fixed in port.fixed_ips
    }
    mapped: list[dict[str, str]] = []
    for item in wanted:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name:
            raise BadRequest(f"Invalid network in the relocation: {item!r}")
        found = sorted(
            (n for n in networks if n.name == name), key=lambda n: n.project_id != project_id
        )
        if not found and item.get("default") is True:
            # The project's "auto" network at the source: the project's own here (made
            # when the server is built, if it has none yet), whatever its name.
            default = [n for n in networks if n.is_default and n.project_id == project_id]
            if not default and len(wanted) == 1:
                return "auto"
            if not default:
                default = [await state.networks.ensure_default_network(project_id)]
            mapped.append({"uuid": default[0].id})
            continue
        if not found:
            raise BadRequest(
                f"Site {state.ctx.name} has no network named {name!r} for this project "
                "(the guest is on it)."
            )
        entry = {"uuid": found[0].id}
        fixed = item.get("fixed_ip")
        if isinstance(fixed, str) and fixed and (found[0].id, fixed) not in taken:
            entry["fixed_ip"] = fixed
        mapped.append(entry)
    return mapped


async def _check_room(state: ComputeState, flavor: FlavorRecord) -> None:
    await state.scheduler.refresh()
    reasons: list[str] = []
    request = HostRequest(
        vcpus=flavor.vcpus, ram_mb=flavor.ram, disk_gb=flavor.disk + flavor.ephemeral
    )
    if state.scheduler.choose(request, await state.servers.host_usages(), reasons=reasons) is None:
        detail = "; ".join(reasons) or "it has no compute host"
        raise Conflict(f"Site {state.ctx.name} has no room for the server: {detail}.")


def _check_hypervisor(state: ComputeState, wanted: Any, disk_format: str) -> None:
    if state.ctx.settings.compute_driver == "qemu" and disk_format not in RUNNABLE_DISK_FORMATS:
        raise BadRequest(
            f"Site {state.ctx.name} cannot run a disk in format {disk_format} (it runs "
            f"{' and '.join(RUNNABLE_DISK_FORMATS)})."
        )
    if not isinstance(wanted, str) or not wanted:
        return
    ours = "QEMU" if state.ctx.settings.compute_driver == "qemu" else "fake"
    if wanted.lower() != ours.lower():
        raise BadRequest(
            f"Site {state.ctx.name} runs {ours} guests; this server needs a {wanted} hypervisor."
        )


def _server_values(
    state: ComputeState,
    spec: dict[str, Any],
    *,
    server_id: str,
    project_id: str,
    user_id: str,
    flavor: FlavorRecord,
    networks: list[dict[str, str]] | str,
) -> dict[str, Any]:
    name = str(spec.get("name") or "server")[:255]
    metadata = spec.get("metadata") or {}
    tags = spec.get("tags") or []
    groups = spec.get("security_groups") or ["default"]
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise BadRequest("Invalid metadata in the relocation.")
    for key, value in (("tags", tags), ("security_groups", groups)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise BadRequest(f"Invalid {key} in the relocation.")
    text = {k: spec.get(k) for k in ("key_name", "key_data", "user_data", "description")}
    for key, value in text.items():
        if value is not None and not isinstance(value, str):
            raise BadRequest(f"Invalid {key} in the relocation.")
    power_on = spec.get("power_on", True)
    if not isinstance(power_on, bool):
        raise BadRequest("Invalid power_on in the relocation.")
    return {
        # A server that was stopped at the source is made stopped here (lifecycle).
        "migration": None if power_on else {"kind": "relocation", "power_on": False},
        "id": server_id,
        "name": name,
        "project_id": project_id,
        "user_id": user_id,
        "image_id": None,  # the moved disk, once it is here
        **flavor_columns(flavor_doc(flavor)),
        "availability_zone": state.ctx.settings.availability_zone,
        "vm_state": "building",
        "task_state": "scheduling",
        "power_state": 0,
        "metadata": metadata,
        "locked": False,
        "tags": tags,
        "security_groups": groups,
        "requested_networks": networks,
        "config_drive": "True",
        "reservation_id": f"r-{new_uuid()[:8]}",
        "launch_index": 0,
        "hostname": hostname_for(name),
        **text,
    }


@router.post(PREFIX, status_code=201)
async def offer(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    data = section(await read_json(request), "relocation")
    # The server's project (an admin moves other projects' servers), which the caller
    # must be allowed to create servers in here, by this site's own assignments.
    project_id = data.get("project_id") or principal.project_id
    if not isinstance(project_id, str) or not project_id:
        raise BadRequest("Relocating a server needs a project-scoped token.")
    require_write(principal, project_id, "os_compute_api:servers:create")
    user_id = data.get("user_id") or principal.user_id
    if not isinstance(user_id, str) or not user_id:
        raise BadRequest("Invalid user_id in the relocation.")
    source = req_str(data, "source")
    if source == state.ctx.name or source not in state.ctx.fleet_sites():
        raise BadRequest(f"{source!r} is not another site of this fleet.")
    server_id = req_str(data, "server_id")
    if not is_uuid(server_id):
        raise BadRequest(f"Invalid server id {server_id!r}.")
    mode = req_str(data, "mode")
    if mode not in ("cold", "mild"):
        raise BadRequest(f"Invalid relocation mode {mode!r} (this site takes: cold or mild).")
    repo = Relocations(state.ctx.store)
    await expire_offers(state)
    if not await _may_arrive(state, repo, server_id):
        raise Conflict(f"Site {state.ctx.name} already has a server {server_id}.")
    if [r for r in await repo.list(direction="in", server_id=server_id, unfinished=True)]:
        raise Conflict(f"Server {server_id} is already being relocated to {state.ctx.name}.")
    spec = section(data, "server")
    flavor_spec = spec.get("flavor")
    if not isinstance(flavor_spec, dict):
        raise BadRequest("Invalid relocation: the server's flavor is missing.")
    disk_format = str(spec.get("disk_format") or "qcow2")
    _check_hypervisor(state, spec.get("hypervisor_type"), disk_format)
    flavor = await matching_flavor(state, principal, flavor_spec)
    networks = await mapped_networks(state, project_id, spec.get("networks"))
    values = _server_values(
        state, spec, server_id=server_id, project_id=project_id, user_id=user_id,
        flavor=flavor, networks=networks,
    )  # fmt: skip
    await check_server_quota(
        state, project_id=project_id, count=1, vcpus=flavor.vcpus, ram=flavor.ram,
        metadata_items=len(values["metadata"]),
    )  # fmt: skip
    await _check_room(state, flavor)
    volumes = arriving(spec.get("volumes"))
    if volumes:
        if state.ctx.volumes is None:
            raise BadRequest(f"Site {state.ctx.name} has no volume service for the volumes.")
        await state.ctx.volumes.check_arrivals(
            principal=principal, project_id=project_id, volumes=volumes
        )
    boot = spec.get("boot") if isinstance(spec.get("boot"), dict) else {}
    held = await held_images(state, boot)
    grant = secrets.token_urlsafe(32)
    record = await repo.create(
        id=new_uuid(), direction="in", server_id=server_id, project_id=project_id,
        user_id=user_id, peer_site=source, mode=mode, phase="offered",
        grant=digest(grant), disk_format=disk_format,
        details={"values": values, "moved_volumes": spec.get("volumes") or [], "boot": boot},
    )  # fmt: skip
    return Json(
        {
            "relocation": {
                "id": record.id,
                "grant": grant,
                "flavor_id": flavor.id,
                "networks": networks,
                "held_images": held,
            }
        },
        status_code=201,
    )


async def _may_arrive(state: ComputeState, repo: Relocations, server_id: str) -> bool:
    """No server here has the id, or only the deleted row of one that was relocated
    from here (kept for the redirect) or whose move here was aborted: a server may
    come back to a site it left, its arrival replacing that row."""
    found = await state.servers.get(server_id, include_deleted=True)
    if found is None:
        return True
    return found.deleted and bool(await repo.list(server_id=server_id))


# Phases in which the source alone moves the move on (before its commit).
UNCOMMITTED = ("offered", *RECEIVING)


async def expire_offers(state: ComputeState, *, now: dt.datetime | None = None) -> int:
    """Abort the moves here whose source sent nothing for ``relocation_offer_ttl_seconds``
    before its commit; how many."""
    ttl = state.ctx.settings.relocation_offer_ttl_seconds
    cutoff = (now or utcnow()) - dt.timedelta(seconds=ttl)
    repo = Relocations(state.ctx.store)
    expired = 0
    for record in await repo.list(direction="in", unfinished=True):
        if record.phase not in UNCOMMITTED or record.updated_at > cutoff:
            continue
        reason = f"expired: no word from {record.peer_site} for {ttl:g} s before its commit"
        if await repo.change(record.id, expect=[record.phase], phase="aborted", error=reason):
            await _drop_received(state, record)
            log.info("relocation %s of server %s %s", record.id, record.server_id, reason)
            expired += 1
    return expired


async def _drop_received(state: ComputeState, record: RelocationRecord) -> None:
    """What an aborted move left here: its hidden image, partial files, moved volumes."""
    if record.image_id is not None:
        await state.images.delete(record.image_id, data_dir=state.ctx.settings.data_dir)
    await asyncio.to_thread(staging_path(state, record.id).unlink, True)
    await asyncio.to_thread(staging_path(state, record.id, "delta").unlink, True)
    _forget(record.id)
    await drop_received(state, record)  # moved volumes no server holds


# -- the steps the grant authorises ------------------------------------------------------


def _not_aborted(record: RelocationRecord) -> RelocationRecord:
    """The source learns, at any step, that the move was aborted here (and why)."""
    if record.phase == "aborted":
        raise Conflict(f"Relocation {record.id} was aborted here: {record.error or 'aborted'}.")
    return record


async def _granted(request: Request, state: ComputeState, relocation_id: str) -> RelocationRecord:
    record = await Relocations(state.ctx.store).get(relocation_id)
    offered = request.headers.get(GRANT_HEADER) or ""
    if (
        record is None
        or record.direction != "in"
        or not hmac.compare_digest(record.grant or "", digest(offered))
    ):
        raise NotFound(f"Relocation {relocation_id} could not be found.")
    return record


async def _server_status(state: ComputeState, record: RelocationRecord) -> dict[str, Any] | None:
    if record.phase not in ("started", "done"):
        return None
    server = await state.servers.get(record.server_id)
    if server is None:
        return {"status": "DELETED"}
    return {"status": status_of(server), "fault": server.fault}


async def _view(state: ComputeState, record: RelocationRecord) -> dict[str, Any]:
    return {
        "relocation": {
            "id": record.id,
            "server_id": record.server_id,
            "phase": record.phase,
            "received": record.done_bytes,
            "size": record.disk_size,
            "part": "delta" if "base" in record.details else "base",
            "error": record.error,
            "server": await _server_status(state, record),
        }
    }


@router.get(PREFIX + "/{relocation_id}")
async def show(
    relocation_id: str, request: Request, state: ComputeState = Depends(compute_state)
) -> Json:
    record = _not_aborted(await _granted(request, state, relocation_id))
    return Json(await _view(state, record))


@router.put(PREFIX + "/{relocation_id}")
async def name_disk(
    relocation_id: str, request: Request, state: ComputeState = Depends(compute_state)
) -> Json:
    record = await _granted(request, state, relocation_id)
    body = await read_json(request)
    if isinstance(body, dict) and "delta" in body:
        return await _name_delta(state, record, section(body, "delta"))
    disk = section(body, "disk")
    size, sha = disk.get("size"), disk.get("sha256")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BadRequest(f"Invalid disk size {size!r}.")
    if not isinstance(sha, str) or not SHA256.match(sha):
        raise BadRequest(f"Invalid disk sha256 {sha!r}.")
    if size > state.ctx.settings.max_image_bytes:
        raise PayloadTooLarge(
            f"The disk ({size} bytes) is larger than this site takes "
            f"({state.ctx.settings.max_image_bytes} bytes)."
        )
    parts = named_parts(disk.get("parts"), size)
    repo = Relocations(state.ctx.store)
    if record.phase == "offered":
        changed = await repo.change(
            record.id, expect=["offered"], phase="receiving", disk_size=size, disk_sha256=sha,
            details={**record.details, "parts": parts},
        )  # fmt: skip
        record = changed or record
    elif record.phase != "receiving" or (record.disk_size, record.disk_sha256) != (size, sha):
        raise Conflict(f"Relocation {record.id} already has another disk ({record.phase}).")
    return Json(await _view(state, record))


async def _name_delta(state: ComputeState, record: RelocationRecord, delta: Any) -> Json:
    """A mild move's second file, once its disk is here whole and checked: the chunks
    go to it from now on (``disk_size``, ``disk_sha256`` and ``done_bytes`` are its;
    the disk's are kept in ``details["base"]``)."""
    size, sha = delta.get("size"), delta.get("sha256")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BadRequest(f"Invalid size of the changes {size!r}.")
    if not isinstance(sha, str) or not SHA256.match(sha):
        raise BadRequest(f"Invalid sha256 of the changes {sha!r}.")
    repo = Relocations(state.ctx.store)
    if record.phase == "receiving-delta":
        if (record.disk_size, record.disk_sha256) != (size, sha):
            raise Conflict(f"Relocation {record.id} already has other changes.")
        return Json(await _view(state, record))
    if record.mode != "mild" or record.phase != "receiving":
        raise Conflict(f"Relocation {record.id} takes no changes ({record.mode}, {record.phase}).")
    if record.done_bytes != record.disk_size or record.details.get("checked") != record.disk_sha256:
        raise Conflict(
            f"Relocation {record.id} has {record.done_bytes} of {record.disk_size} bytes of "
            "its disk: the changes come after it."
        )
    base = {"size": record.disk_size, "sha256": record.disk_sha256}
    changed = await repo.change(
        record.id, expect=["receiving"], phase="receiving-delta", disk_size=size,
        disk_sha256=sha, done_bytes=0, details={**record.details, "base": base},
    )  # fmt: skip
    _running.pop((record.id, "receiving"), None)  # the disk's: the join changes it
    await asyncio.to_thread(staging_path(state, record.id, "delta").unlink, True)
    return Json(await _view(state, changed or record))


# A source keeps a few chunks in flight (relocation_out.IN_FLIGHT): one that arrives
# before those it follows waits here, whole and checked, until the file reaches its
# start (each relocation's chunks are appended one at a time, in order), at most
# AHEAD_WAIT_SECONDS; then, or if the file went past it, a 409 saying where it ends.
AHEAD_WAIT_SECONDS = 60.0
_turns: dict[str, tuple[asyncio.Condition, list[int]]] = {}


@contextlib.asynccontextmanager
async def _turn(relocation_id: str) -> AsyncIterator[asyncio.Condition]:
    """The relocation's condition, held: its appends one at a time."""
    turn, users = _turns.setdefault(relocation_id, (asyncio.Condition(), [0]))
    users[0] += 1
    try:
        async with turn:
            yield turn
    finally:
        users[0] -= 1
        if not users[0]:
            _turns.pop(relocation_id, None)


async def _its_turn(
    repo: Relocations, turn: asyncio.Condition, relocation_id: str, start: int, phase: str
) -> RelocationRecord:
    """The relocation once its file ends at ``start`` (``turn`` held), still in
    ``phase``; 409 else."""
    deadline = asyncio.get_running_loop().time() + AHEAD_WAIT_SECONDS
    while True:
        record = await repo.get(relocation_id)
        if record is None or record.phase != phase:
            raise Conflict(f"Relocation {relocation_id} takes no disk data now.")
        left = deadline - asyncio.get_running_loop().time()
        if record.done_bytes == start:
            return record
        if record.done_bytes > start or left <= 0:
            raise Conflict(
                f"Relocation {record.id} has {record.done_bytes} bytes: the next chunk "
                "starts there."
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(turn.wait(), left)


def _append(path: Path, start: int, chunk: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        f.truncate(start)  # bytes past what was acknowledged: a write a crash cut short
        f.seek(start)
        f.write(chunk)
        f.flush()
        os.fsync(f.fileno())


class _Running:
    """The digests of a file whose chunks this process appended, in order, from its
    byte 0 (``at``: how far): its sha256, so that its last chunk's answer reads nothing
    again; and for a cold move's file, whose first ``image_end`` bytes are the disk
    (the parts come after it), the image's digests of the disk as Glance records them
    (sha256, ``checksum`` md5, ``os_hash_value`` sha512), so that the commit makes the
    image without reading the disk again (docs/bench.md). In memory only: after a
    restart, or a chunk this process did not append, they are read from the file."""

    def __init__(self, image_end: int | None) -> None:
        self.at = 0
        self.sha256 = hashlib.sha256()
        self.image_end = image_end
        self.md5 = hashlib.md5(usedforsecurity=False) if image_end is not None else None
        self.sha512 = hashlib.sha512() if image_end is not None else None
        # The disk's sha256: the file's, copied where the disk ends.
        self.image_sha256 = self.sha256.copy() if image_end == 0 else None

    def _whole(self, chunk: memoryview) -> None:
        cut = -1 if self.image_end is None else self.image_end - self.at
        if 0 < cut <= len(chunk):
            self.sha256.update(chunk[:cut])
            self.image_sha256 = self.sha256.copy()
            self.sha256.update(chunk[cut:])
        else:
            self.sha256.update(chunk)

    async def append(self, path: Path, start: int, chunk: bytes) -> None:
        """``chunk`` appended at ``start`` (== ``at``) and fsync'd, its digests taken
        meanwhile, each in its own thread (hashlib lets go of the GIL)."""
        view = memoryview(chunk)
        work: list[Callable[[], object]] = [
            functools.partial(_append, path, start, chunk),
            functools.partial(self._whole, view),
        ]
        md5, sha512 = self.md5, self.sha512
        if self.image_end is not None and md5 is not None and sha512 is not None:
            head = view[: max(0, self.image_end - self.at)]
            if head:
                work += [
                    functools.partial(md5.update, head),
                    functools.partial(sha512.update, head),
                ]
        # All of them done before the next chunk's turn, also when one failed.
        done = await asyncio.gather(*(asyncio.to_thread(w) for w in work), return_exceptions=True)
        for result in done:
            if isinstance(result, BaseException):
                raise result
        self.at += len(chunk)

    def image_info(self) -> BlobInfo | None:
        """The disk's digests, once all of its bytes were appended (a cold move's)."""
        if (
            self.image_end is None
            or self.at < self.image_end
            or self.image_sha256 is None
            or self.md5 is None
            or self.sha512 is None
        ):
            return None
        return BlobInfo(sha256=self.image_sha256.hexdigest(), size=self.image_end,
                        md5=self.md5.hexdigest(), sha512=self.sha512.hexdigest())  # fmt: skip


# Each file's running digests, by (relocation id, phase), while it arrives and until the
# commit: this process's only.
_running: dict[tuple[str, str], _Running] = {}


def _image_end(record: RelocationRecord) -> int | None:
    """Where a cold move's disk ends in its file (its parts after it); None when the
    file is not the image's bytes (a mild move's disk, changed by the join, and its
    changes)."""
    if record.mode != "cold" or record.phase != "receiving" or record.disk_size is None:
        return None
    parts = record.details.get("parts") or []
    return int(parts[0]["offset"]) if parts else record.disk_size


def _whole_file(relocation_id: str, phase: str, size: int | None) -> _Running | None:
    """The running digests of the file received in ``phase`` if they cover all of its
    ``size`` bytes; None: they are to be read from the file. The one place deciding."""
    running = _running.get((relocation_id, phase))
    return running if running is not None and running.at == size else None


def _forget(relocation_id: str) -> None:
    for phase in RECEIVING:
        _running.pop((relocation_id, phase), None)


@router.put(PREFIX + "/{relocation_id}/disk")
async def put_chunk(
    relocation_id: str, request: Request, state: ComputeState = Depends(compute_state)
) -> Json:
    record = await _granted(request, state, relocation_id)
    if record.phase not in RECEIVING or record.disk_size is None:
        raise Conflict(f"Relocation {record.id} takes no disk data now ({record.phase}).")
    found = RANGE.match(request.headers.get("content-range") or "")
    if found is None:
        raise BadRequest("A disk chunk needs a Content-Range: bytes START-END/TOTAL header.")
    start, end, total = (int(g) for g in found.groups())
    if total != record.disk_size or end < start or end >= total:
        raise BadRequest(f"Invalid Content-Range for a disk of {record.disk_size} bytes.")
    if start < record.done_bytes:
        raise Conflict(
            f"Relocation {record.id} has {record.done_bytes} bytes: the next chunk starts there."
        )
    if end - start + 1 > MAX_CHUNK:
        raise PayloadTooLarge(f"A disk chunk is at most {MAX_CHUNK} bytes.")
    expected = (request.headers.get(CHUNK_SHA_HEADER) or "").lower()
    if not SHA256.match(expected):
        raise BadRequest(f"A disk chunk needs its sha256 in {CHUNK_SHA_HEADER}.")
    parts: list[bytes] = []
    length = 0
    async for piece in request.stream():
        length += len(piece)
        if length > end - start + 1:
            raise BadRequest("The chunk is longer than its Content-Range says.")
        parts.append(piece)
    chunk = b"".join(parts)
    if len(chunk) != end - start + 1:
        raise BadRequest("The chunk is shorter than its Content-Range says.")
    if hashlib.sha256(chunk).hexdigest() != expected:
        raise BadRequest(f"The chunk's sha256 is not the one in {CHUNK_SHA_HEADER}.")
    repo = Relocations(state.ctx.store)
    phase = record.phase
    async with _turn(record.id) as turn:
        record = await _its_turn(repo, turn, record.id, start, phase)
        path = _receiving_path(state, record)
        running = _running.pop((record.id, phase), None)
        if start == 0:
            running = _Running(_image_end(record))
        if running is not None and running.at == start:
            await running.append(path, start, chunk)
        else:
            await asyncio.to_thread(_append, path, start, chunk)
            running = None
        changed = await repo.change(record.id, expect=[phase], done_bytes=end + 1)
        if changed is not None and running is not None:
            _running[(record.id, phase)] = running
        if changed is not None and end + 1 == changed.disk_size:
            changed = await _check_whole(repo, changed, path)
        turn.notify_all()
    return Json(await _view(state, changed or record))


async def _check_whole(repo: Relocations, record: RelocationRecord, path: Path) -> RelocationRecord:
    """The file is whole: its sha256 (as its chunks came; else read now) checked while a
    mild move's guest still runs (its commit need not read the disk again); a mismatch
    starts it again (409)."""
    running = _whole_file(record.id, record.phase, record.disk_size)
    if running is not None:
        sha = running.sha256.hexdigest()
    else:
        sha = (await asyncio.to_thread(file_digest, path))[0]
    if sha == record.disk_sha256:
        return await repo.merge_details(record.id, {"checked": record.disk_sha256}) or record
    _running.pop((record.id, record.phase), None)
    await asyncio.to_thread(path.unlink, True)
    await repo.change(record.id, expect=[record.phase], done_bytes=0)
    raise Conflict(
        f"The file of relocation {record.id} does not have the sha256 it was named with: "
        "it has 0 bytes, the next chunk starts there."
    )


def file_digest(path: Path) -> tuple[str, int]:
    """(sha256 hex, size) of a file, read a MiB at a time."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
            size += len(block)
    return h.hexdigest(), size


async def _kept_volumes(request: Request, record: RelocationRecord) -> list[dict[str, Any]]:
    """The volumes the server keeps at the source, attached from here over the NBD
    exports the source made for them (each the source's to release when this site
    says so: ``RemoteEnd``)."""
    try:
        body = await request.json() if await request.body() else {}
    except ValueError as exc:
        raise BadRequest("The commit's body is not JSON.") from exc
    volumes = body.get("volumes") if isinstance(body, dict) else None
    if not volumes:
        return []
    if not isinstance(volumes, list):
        raise BadRequest("Invalid volumes in the commit: a list is expected.")
    kept = []
    for item in volumes:
        nbd = item.get("nbd") if isinstance(item, dict) else None
        if not isinstance(nbd, dict) or not all(k in nbd for k in NBD_FIELDS):
            raise BadRequest(f"Invalid volume in the commit: {item!r}")
        port = nbd.get("port")
        if not isinstance(port, int) or not 0 < port < 65536:
            raise BadRequest(f"Invalid NBD port in the commit: {port!r}")
        kept.append({
            "volume_id": str(item["volume_id"]), "device": str(item["device"]),
            "attachment_id": str(item["attachment_id"]), "bdm_id": str(item.get("bdm_id") or ""),
            "tag": item.get("tag"), "state": "attached", "site": record.peer_site,
            "read_only": bool(item.get("read_only")),
            "nbd": {k: nbd[k] for k in NBD_FIELDS},
        })  # fmt: skip
    return kept


@router.post(PREFIX + "/{relocation_id}/commit", status_code=202)
async def commit(
    relocation_id: str, request: Request, state: ComputeState = Depends(compute_state)
) -> Json:
    record = await _granted(request, state, relocation_id)
    repo = Relocations(state.ctx.store)
    if record.phase in ("started", "done"):
        return Json(await _view(state, record), status_code=202)
    if record.phase not in (*RECEIVING, "committing") or record.done_bytes != record.disk_size:
        raise Conflict(
            f"Relocation {record.id} has {record.done_bytes} of {record.disk_size} bytes "
            f"({record.phase}): it cannot be committed."
        )
    staged = staging_path(state, record.id)
    if record.image_id is None:
        # Once split (its parts out, the file cut back to the disk) it was checked.
        receiving = _receiving_path(state, record)  # checked as its last chunk came, else now
        if not record.details.get("split"):
            if record.details.get("checked") != record.disk_sha256 and (
                (await asyncio.to_thread(file_digest, receiving))[0] != record.disk_sha256
            ):
                await asyncio.to_thread(receiving.unlink, True)
                await repo.change(record.id, expect=list(RECEIVING), done_bytes=0)
                raise BadRequest(
                    f"The disk of relocation {record.id} does not have the sha256 it was "
                    "named with: it is to be sent again."
                )
            await split_parts(state, record, staged)
        record = await repo.change(record.id, expect=[*RECEIVING, "committing"],
                                   phase="committing",
                                   details={**record.details, "split": True}) or record  # fmt: skip
        blob = _placed_already(state, record, staged)
        if blob is None:
            if record.mode == "mild":  # what the guest wrote while its disk came, on top
                try:
                    await state.driver.join_layers(base=staged, changes=receiving)
                except DriverError as exc:  # the source undoes the move: its guest runs again
                    raise Conflict(
                        f"Relocation {record.id}'s changes cannot be joined: {exc}"
                    ) from exc
            blob = await _image_blob(state, record, staged)
            # Kept before the file is renamed into the image store: a commit cut short
            # after that, asked again, finds the data there.
            image_data = dataclasses.asdict(blob.info)
            record = await repo.merge_details(record.id, {"image_data": image_data}) or record
        values = dict(record.details["values"])
        boot = await boot_properties(state, record)
        image = await state.images.create(
            owner=record.project_id,
            name=f"{values['name']} (relocated from {record.peer_site})",
            disk_format=record.disk_format or "qcow2",
            container_format="bare",
            visibility="private",
            os_hidden=True,
            properties={"image_type": "snapshot", "instance_uuid": record.server_id,
                        "edge_relocation": record.id, **boot},
            data_blob=blob,
            data_dir=state.ctx.settings.data_dir,
        )  # fmt: skip
        record = await repo.change(record.id, image_id=image.id) or record
        _forget(record.id)
    existing = await state.servers.get(record.server_id, include_deleted=True)
    if existing is None or existing.deleted:  # a deleted row: the server left here once
        moved = await receive_volumes(state, record)
        values = {**record.details["values"], "image_id": record.image_id,
                  "volumes": await _kept_volumes(request, record) + moved}  # fmt: skip
        await state.servers.create(values=values, replace_deleted=True)
        await state.servers.record_action(
            server_id=record.server_id, action="relocate",
            request_id=request.headers.get("x-openstack-request-id") or f"req-{new_uuid()}",
            user_id=record.user_id, project_id=record.project_id,
        )  # fmt: skip
        state.lifecycle.start_build(record.server_id)
    record = await repo.change(record.id, phase="started") or record
    await asyncio.to_thread(staged.unlink, True)
    await asyncio.to_thread(staging_path(state, record.id, "delta").unlink, True)
    await asyncio.to_thread(drop_part_files, state, record)
    return Json(await _view(state, record), status_code=202)


async def _image_blob(state: ComputeState, record: RelocationRecord, staged: Path) -> PendingBlob:
    """The received disk, ``staged``, as the image's data, renamed into the image store
    (not copied); its digests as its chunks came when this process appended every byte
    of a cold move's file (``_whole_file``), else read now (after a restart; a mild
    move's disk, which the join changed)."""
    running = (
        _whole_file(record.id, "receiving", record.disk_size) if record.mode == "cold" else None
    )
    info = running.image_info() if running is not None else None
    if info is not None and info.size != (await asyncio.to_thread(staged.stat)).st_size:
        info = None  # not the bytes they were taken of
    return await BlobStore(state.ctx.settings.data_dir).adopt_file(
        staged, max_bytes=state.ctx.settings.max_image_bytes, info=info
    )


def _placed_already(
    state: ComputeState, record: RelocationRecord, staged: Path
) -> PendingBlob | None:
    """The disk a commit cut short had renamed into the image store (its digests kept in
    the journal, the staged file gone), else None."""
    data = record.details.get("image_data")
    if not isinstance(data, dict) or staged.exists():
        return None
    info = BlobInfo(**data)
    if not BlobStore(state.ctx.settings.data_dir).path(info.sha256).exists():
        return None
    return PendingBlob(tmp_path=staged, info=info, adopted=True)


@router.post(PREFIX + "/{relocation_id}/done")
async def done(
    relocation_id: str, request: Request, state: ComputeState = Depends(compute_state)
) -> Json:
    record = await _granted(request, state, relocation_id)
    if record.phase not in ("started", "done"):
        raise Conflict(f"Relocation {record.id} has no server here yet ({record.phase}).")
    await volumes_settled(state, record)
    changed = await Relocations(state.ctx.store).change(record.id, phase="done")
    return Json(await _view(state, changed or record))


@router.delete(PREFIX + "/{relocation_id}", status_code=204)
async def abort(
    relocation_id: str, request: Request, state: ComputeState = Depends(compute_state)
) -> Response:
    record = await _granted(request, state, relocation_id)
    if record.phase == "aborted":
        return Response(status_code=204)
    if record.phase == "done":
        raise Conflict(f"Relocation {record.id} is done: the server runs here.")
    server = await state.servers.get(record.server_id)
    if server is not None:
        if server.vm_state == "active":
            raise Conflict(f"Relocation {record.id} cannot be aborted: the server runs here.")
        await state.servers.update(server.id, task_state="deleting")
        state.lifecycle.start_delete(server.id)
    await _drop_received(state, record)
    await Relocations(state.ctx.store).change(record.id, phase="aborted")
    return Response(status_code=204)
