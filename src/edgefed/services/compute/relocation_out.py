"""Relocation of a server to another site: the source's side, which drives the move.

``POST /servers/{id}/action {"os-edge:relocate": {"site": "Paris"}}`` asks the
destination first, with the caller's token (relocation_in.py: a 4xx naming what it
lacks comes back as this answer's 4xx, before anything is stopped); what it grants is
recorded in a journal row (``store/compute/relocations.py``) and the move runs in the
background, one phase after the other, each recorded before the next begins:

    cold: stopping → exporting → attaching → naming → sending → committing →
          starting → finishing → done
    mild: snapshotting → attaching → naming → sending-base → stopping →
          exporting-delta → naming-delta → sending-delta → committing → starting →
          finishing → done

(cold: the guest is stopped, its disk copied to a standalone qcow2, sent in chunks the
destination fsyncs and acknowledges, the server created there with the same id, and
only once it is ACTIVE there is the guest removed here. Mild: the running guest's disk
is frozen (the driver's ``freeze_disk``: its writes go to a new layer) and sent while
it runs; then it is stopped and only that layer goes (``export_changes``), the second
file of the move, which the destination joins to the first before it creates the
server: the guest is down for the layer's transfer and the start, not the disk's.) A
source that restarts takes each unfinished move up at its phase; the bytes the
destination has are not sent again.

Undoing: until the commit was sent, no server can exist at the destination, so a
failure (a refusal, a link down longer than ``relocation_link_timeout_seconds``) aborts
there if it can, starts the guest here again if it was running, and the move is
``failed`` with its reason. From the commit on the destination may be running the
guest: the move is undone only when the destination confirms the abort (it deletes a
server that is not ACTIVE); while it cannot be reached the move waits, taken up again
every ``relocation_retry_seconds``; the guest never runs at both sites.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request

from edgefed.api.auth import Principal
from edgefed.api.remote import FORWARDED_HEADER, describe_http_error, describe_refusal
from edgefed.api.responses import Json
from edgefed.core.errors import BadRequest, Conflict, EdgefedError, Forbidden, Unavailable
from edgefed.core.ids import new_uuid
from edgefed.drivers.base import DriverError, PowerState
from edgefed.services.compute.relocation_in import (
    CHUNK_SHA_HEADER,
    GRANT_HEADER,
    PREFIX,
    expire_offers,
    file_digest,
)
from edgefed.services.compute.relocation_parts import (
    append_parts,
    boot_files,
    moved_volumes,
    progress,
)
from edgefed.services.compute.state import ComputeState
from edgefed.store.compute import (
    RelocationRecord,
    Relocations,
    ServerRecord,
    VolumeMapping,
    mappings_of,
)
from edgefed.store.schema import utcnow

log = logging.getLogger("edgefed.compute.relocation")

ACTION = "os-edge:relocate"
PATH = "/compute" + PREFIX
# Phases from which the destination may run the guest: undone only with its word.
COMMITTED = ("committing", "starting", "finishing")
# Disk chunks sent before the first of them is answered: each waits a round trip and
# the destination's fsync, which the next ones' bytes cover (docs/bench.md, relocation).
IN_FLIGHT = 3
# The destination's refusal of an offer, as this site answers it (400 for the rest).
REFUSALS: dict[int, type[EdgefedError]] = {403: Forbidden, 409: Conflict}


class LinkDown(Exception):
    """The destination did not answer (or answered 5xx): try again later."""


class Refused(Exception):
    """The destination refused a step: the move cannot go on."""


# How a move goes: the modes the action takes.
MODES = ("cold", "mild")


def disk_path(state: ComputeState, relocation_id: str, part: str = "base") -> Path:
    """The file sent: the disk (``base``), or a mild move's layer of changes (``delta``)."""
    name = f"{relocation_id}.out" if part == "base" else f"{relocation_id}.{part}.out"
    return state.ctx.settings.data_dir / "relocations" / name


async def _networks_of(state: ComputeState, server: ServerRecord) -> list[dict[str, Any]]:
    ports = await state.networks.list_ports(device_id=server.id)
    networks = {n.id: n for n in await state.networks.list_networks()}
    found = []
    for port in ports:
        net = networks.get(port.network_id)
        if net is None:
            continue
        fixed = port.fixed_ips[0].ip_address if port.fixed_ips else None
        found.append({"name": net.name, "fixed_ip": fixed, "default": net.is_default})
    return found


async def _spec(state: ComputeState, server: ServerRecord) -> dict[str, Any]:
    """What the destination needs to know of the server to check and recreate it."""
    host = server.host or ""
    return {
        "name": server.name,
        "flavor": dict(server.flavor),
        "key_name": server.key_name,
        "key_data": server.key_data,
        "metadata": dict(server.metadata),
        "user_data": server.user_data,
        "description": server.description,
        "tags": list(server.tags),
        "security_groups": list(server.security_groups),
        "networks": await _networks_of(state, server),
        "hypervisor_type": state.driver.hypervisor(host).hypervisor_type if host else None,
        "disk_format": "qcow2" if state.ctx.settings.compute_driver == "qemu" else "raw",
        # A stopped server stays stopped where it goes (Nova's cold migration keeps it so).
        "power_on": server.vm_state == "active",
    }


async def begin(
    request: Request, principal: Principal, state: ComputeState, server: ServerRecord, data: Any
) -> Json:
    """The ``os-edge:relocate`` action: ask the destination, then move in the background."""
    if not isinstance(data, dict):
        raise BadRequest(f"Invalid input: '{ACTION}' must be an object")
    site = data.get("site")
    mode = data.get("mode", "cold")
    volumes = data.get("volumes", "remote")
    if not isinstance(site, str) or not site:
        raise BadRequest(f"Invalid input: '{ACTION}' needs the destination 'site'")
    record = await offer(state, principal, server, site, mode=mode, volumes=volumes)
    relocator_of(state).start(record.id)
    return Json({"relocation": view(record)}, status_code=202)


def _local_volumes(state: ComputeState, server: ServerRecord, choice: Any) -> list[VolumeMapping]:
    """The server's volumes, which stay here and are attached remotely from the
    destination (``volumes: "remote"``) or go there with it (``"move"``); the 400
    naming what cannot be moved so (a volume of a third site: detached first)."""
    mappings = mappings_of(server.volumes)
    if choice not in ("remote", "move"):
        raise BadRequest(f"Invalid volumes choice {choice!r} (remote or move).")
    if not mappings:
        return []
    if state.ctx.volumes is None:
        raise BadRequest(f"Site {state.ctx.name} has no volume service to export volumes.")
    for mapping in mappings:
        if mapping.boot_index == 0:
            raise BadRequest(
                f"Server {server.id} boots from volume {mapping.volume_id}: relocating it is "
                "not supported yet."
            )
        if mapping.site not in (None, state.ctx.name):
            raise BadRequest(
                f"Server {server.id} uses volume {mapping.volume_id} of site {mapping.site}: "
                "detach it to relocate the server."
            )
        if mapping.state != "attached":
            raise Conflict(f"Volume {mapping.volume_id} of server {server.id} is still attaching.")
    return mappings


async def offer(
    state: ComputeState,
    principal: Principal,
    server: ServerRecord,
    site: str,
    *,
    mode: Any,
    volumes: Any = "remote",
) -> RelocationRecord:
    """Ask ``site`` to take ``server`` (with the caller's token) and journal the move it
    grants, the server ``relocating``; the 4xx naming what stands in the way, else.
    The move is not started (``Relocator.start``)."""
    if mode not in MODES:
        raise BadRequest(f"Invalid relocation mode {mode!r} (this site moves: cold or mild)")
    ctx = state.ctx
    if site == ctx.name:
        raise BadRequest(f"Server {server.id} is at {site} already.")
    if site not in ctx.fleet_sites():
        known = ", ".join(sorted(ctx.fleet_sites()))
        raise BadRequest(f"Unknown site {site!r} (the fleet has {known}).")
    if server.vm_state not in ("active", "stopped") or server.task_state is not None:
        raise Conflict(
            f"Cannot 'relocate' instance {server.id} while it is in vm_state {server.vm_state}"
            + (f" and task_state {server.task_state}" if server.task_state else "")
        )
    mappings = _local_volumes(state, server, volumes)
    kept, moving = (mappings, []) if volumes == "remote" else ([], mappings)
    if server.vm_state != "active":
        mode = "cold"  # a stopped guest has nothing to keep running: its disk goes whole
    if mode == "mild" and moving:  # the guest writes them until it stops
        raise BadRequest(
            f"Server {server.id} has volumes: a mild relocation leaves them here "
            '("volumes": "remote"); a cold one moves them.'
        )
    if not principal.token:
        raise Forbidden("Relocating a server needs the caller's token.")
    spec = await _spec(state, server)
    if moving:
        spec["volumes"] = await moved_volumes(state, moving)
    if boot := await boot_files(state, server):
        spec["boot"] = boot
    body = {"relocation": {"server_id": server.id, "source": ctx.name, "mode": mode,
                           "project_id": server.project_id, "user_id": server.user_id,
                           "server": spec}}  # fmt: skip
    try:
        r = await _request(state, site, "POST", PATH, token=principal.token, body=body)
    except LinkDown as exc:
        raise Unavailable(f"Site {site} cannot be reached to relocate to: {exc}") from exc
    if r.status_code != 201:
        kind = REFUSALS.get(r.status_code, BadRequest)
        raise kind(f"Site {site} refuses the relocation: {describe_refusal(site, r)}")
    offered = r.json()["relocation"]
    repo = Relocations(ctx.store)
    record = await repo.create(
        id=new_uuid(), direction="out", server_id=server.id, project_id=server.project_id,
        user_id=principal.user_id, peer_site=site, peer_id=str(offered["id"]), mode=mode,
        phase="snapshotting" if mode == "mild" else "stopping", grant=str(offered["grant"]),
        was_running=server.vm_state == "active",
        details={"flavor_id": offered.get("flavor_id"), "networks": offered.get("networks"),
                 "kept_volumes": [m.volume_id for m in kept],
                 "moved_volumes": spec.get("volumes") or [], "boot": boot,
                 "held_images": offered.get("held_images") or []},
    )  # fmt: skip
    if not await state.servers.transition(server.id, expect_task=[None], task_state="relocating"):
        await repo.change(record.id, phase="aborted", error="the server changed meanwhile")
        with contextlib.suppress(LinkDown):
            await _granted_call(state, record, "DELETE", "")
        raise Conflict(f"Cannot 'relocate' instance {server.id}: it changed meanwhile")
    return record


def _bytes(record: RelocationRecord) -> tuple[int, int | None]:
    """(done, total) of the move's files: a mild move's layer of changes counts after
    its disk, at either side."""
    base = record.details.get("base")  # the destination, receiving the changes
    if record.direction == "in" and isinstance(base, dict):
        return int(base["size"]) + record.done_bytes, int(base["size"]) + (record.disk_size or 0)
    delta = record.details.get("delta")  # the source, once the changes are exported
    if isinstance(delta, dict) and record.disk_size is not None:
        return record.done_bytes, record.disk_size + int(delta["size"])
    return record.done_bytes, record.disk_size


def view(record: RelocationRecord) -> dict[str, Any]:
    done, total = _bytes(record)
    moving = {"volumes": progress(record)} if record.details.get("moved_volumes") else {}
    return {
        "id": record.id,
        "server_id": record.server_id,
        "direction": record.direction,
        "site": record.peer_site,
        "mode": record.mode,
        "phase": record.phase,
        "error": record.error,
        "bytes_done": done,
        "bytes_total": total,
        "created_at": record.created_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "updated_at": record.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        **moving,
    }


# -- talking to the destination ------------------------------------------------------------


async def _request(
    state: ComputeState,
    site: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    grant: str | None = None,
    body: Any = None,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    base = state.ctx.fleet_sites().get(site)
    if base is None:
        raise LinkDown(f"site {site} is not in this site's fleet")
    sent = {FORWARDED_HEADER: state.ctx.name, **(headers or {})}
    if token is not None:
        sent["X-Auth-Token"] = token
    if grant is not None:
        sent[GRANT_HEADER] = grant
    if body is not None:
        content = json.dumps(body).encode()
        sent["Content-Type"] = "application/json"
    try:
        r = await state.ctx.http.request(
            method, base + path, content=content or b"", headers=sent,
            timeout=max(60.0, state.ctx.settings.scope_call_timeout_seconds),
        )  # fmt: skip
    except httpx.HTTPError as exc:
        raise LinkDown(f"site {site} did not answer: {describe_http_error(exc)}") from exc
    if r.status_code >= 500:
        raise LinkDown(describe_refusal(site, r))
    return r


async def _granted_call(
    state: ComputeState,
    record: RelocationRecord,
    method: str,
    suffix: str,
    **kwargs: Any,
) -> httpx.Response:
    return await _request(
        state, record.peer_site, method, f"{PATH}/{record.peer_id}{suffix}",
        grant=record.grant, **kwargs,
    )  # fmt: skip


def relocator_of(state: ComputeState) -> Relocator:
    return state.ctx.slots.require(Relocator)


# -- the move --------------------------------------------------------------------------------


def _place(source: Path | None, data: bytes | None, temporary: bool, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    if source is not None and temporary:
        shutil.move(str(source), partial)
    elif source is not None:
        shutil.copyfile(source, partial)
    else:
        partial.write_bytes(data or b"")
    with open(partial, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(partial, target)


async def _cancelled(flight: collections.deque[tuple[int, asyncio.Task[httpx.Response]]]) -> None:
    """Cancel the chunks still in flight (a chunk the destination has whole is appended
    in its turn all the same: the next ``GET`` says how far it got)."""
    tasks = [task for _, task in flight]
    flight.clear()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _remove_files(state: ComputeState, relocation_id: str) -> None:
    for part in ("base", "delta"):
        disk_path(state, relocation_id, part).unlink(missing_ok=True)


def _read(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


class Relocator:
    """Runs this site's outgoing moves, one task each; ``resume`` takes up those a stop
    left unfinished. ``sleep`` and ``clock`` are the test's to replace."""

    def __init__(
        self,
        state: ComputeState,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.state = state
        self.repo = Relocations(state.ctx.store)
        self.sleep = sleep
        self.clock = clock
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._running = asyncio.Semaphore(max(1, state.ctx.settings.relocation_concurrency))

    def start(self, relocation_id: str) -> None:
        if relocation_id in self._tasks:
            return
        task = asyncio.get_running_loop().create_task(
            self._guarded(relocation_id), name=f"relocation-{relocation_id}"
        )
        self._tasks[relocation_id] = task
        task.add_done_callback(lambda t: self._tasks.pop(relocation_id, None))

    async def resume(self) -> int:
        unfinished = await self.repo.list(direction="out", unfinished=True)
        for record in unfinished:
            self.start(record.id)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep())
        return len(unfinished)

    async def _sweep(self) -> None:
        """Take up again the moves that wait for an unreachable destination; drop the
        moves here whose source went silent (``expire_offers``)."""
        while True:
            await self.sleep(self.state.ctx.settings.relocation_retry_seconds)
            for record in await self.repo.list(direction="out", unfinished=True):
                self.start(record.id)
            try:
                await expire_offers(self.state)
            except Exception:  # the next round tries again
                log.exception("dropping the silent sources' moves failed")

    async def idle(self, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        if self._sweeper is not None:
            tasks.append(self._sweeper)
            self._sweeper = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def _guarded(self, relocation_id: str) -> None:
        try:
            async with self._running:
                await self._run(relocation_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: the move stops, the guest is not lost
            log.exception("relocation %s stopped", relocation_id)
            with contextlib.suppress(Exception):
                await self.repo.change(relocation_id, error=f"unexpected: {exc!r}")

    async def cancel(self, relocation_id: str, reason: str) -> bool:
        """Undo a move that has not reached its commit (False: too late, it goes on)."""
        record = await self.repo.get(relocation_id)
        if record is None or record.finished or record.phase in COMMITTED:
            return False
        task = self._tasks.pop(relocation_id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        record = await self.repo.get(relocation_id)
        if record is None or record.finished or record.phase in COMMITTED:
            return False
        await self._undo(record, reason)
        return True

    async def _run(self, relocation_id: str) -> None:
        down_since: float | None = None
        delay = 0.5
        while True:
            record = await self.repo.get(relocation_id)
            if record is None or record.finished:
                return
            try:
                await self._step(record)
                down_since, delay = None, 0.5
            except LinkDown as exc:
                now = self.clock()
                down_since = now if down_since is None else down_since
                waited = now - down_since
                timeout = self.state.ctx.settings.relocation_link_timeout_seconds
                if waited >= timeout:
                    if record.phase in COMMITTED:
                        await self.repo.change(
                            record.id,
                            error=f"{exc}; waiting for {record.peer_site} (the guest may run "
                            "there: nothing is undone without its word)",
                        )
                        return  # the sweeper takes it up again
                    await self._undo(record, f"the link to {record.peer_site} is down: {exc}")
                    return
                await self.repo.change(record.id, error=f"{exc} (retrying)")
                await self.sleep(min(delay, max(0.0, timeout - waited)))
                delay = min(delay * 2, 30.0)
            except (Refused, DriverError, EdgefedError) as exc:
                await self._undo(record, str(exc))
                return

    async def _step(self, record: RelocationRecord) -> None:
        step = getattr(self, "_" + record.phase.replace("-", "_"))
        await step(record)

    async def _advance(self, record: RelocationRecord, phase: str, **values: Any) -> None:
        await self.repo.change(record.id, expect=[record.phase], phase=phase, error=None, **values)

    # -- the phases ------------------------------------------------------------------------

    async def _stopping(self, record: RelocationRecord) -> None:
        state = self.state
        if state.driver.power_state(record.server_id) == PowerState.RUNNING:
            await state.driver.stop(record.server_id)
        await state.servers.update(
            record.server_id, vm_state="stopped", power_state=int(PowerState.SHUTDOWN)
        )
        await self._advance(record, "exporting-delta" if record.mode == "mild" else "exporting")

    async def _snapshotting(self, record: RelocationRecord) -> None:
        """Mild: the running guest's disk frozen, its writes go on in a layer on top."""
        await self._exporting(record, frozen=True)

    async def _exporting(self, record: RelocationRecord, *, frozen: bool = False) -> None:
        driver = self.state.driver
        snap = await (driver.freeze_disk if frozen else driver.snapshot)(record.server_id)
        target = disk_path(self.state, record.id)
        await asyncio.to_thread(_place, snap.path, snap.data, snap.temporary, target)
        # The moved volumes and the kernel and ramdisk go after the disk, in its transfer.
        parts = await append_parts(self.state, record, target)
        if parts:
            record = await self.repo.merge_details(record.id, {"parts": parts}) or record
        sha, size = await asyncio.to_thread(file_digest, target)
        server = await self.state.servers.get(record.server_id)
        fmt = snap.disk_format
        if fmt is None and server is not None and server.image_id:
            image = await self.state.images.get(server.image_id)
            fmt = image.disk_format if image is not None else None
        await self._advance(
            record, "attaching", disk_size=size, disk_sha256=sha, disk_format=fmt or "raw"
        )

    async def _exporting_delta(self, record: RelocationRecord) -> None:
        """Mild, the guest stopped: what it wrote since the freeze, the move's second file."""
        snap = await self.state.driver.export_changes(record.server_id)
        target = disk_path(self.state, record.id, "delta")
        await asyncio.to_thread(_place, snap.path, snap.data, snap.temporary, target)
        sha, size = await asyncio.to_thread(file_digest, target)
        await self._advance(
            record, "naming-delta", details={**record.details,
                                             "delta": {"size": size, "sha256": sha}},
        )  # fmt: skip

    async def _attaching(self, record: RelocationRecord) -> None:
        """The volumes that stay here: an attachment each for the destination, its NBD
        export made for it alone, recorded before the next one."""
        catalog = self.state.ctx.volumes
        server = await self.state.servers.get(record.server_id)
        made = dict(record.details.get("volumes") or {})
        for mapping in mappings_of(server.volumes if server is not None else []):
            if mapping.volume_id not in record.details.get("kept_volumes", []):
                continue
            if mapping.volume_id in made or catalog is None:
                continue
            connected = await catalog.connect_for_site(
                volume_id=mapping.volume_id, server_id=record.server_id,
                site=record.peer_site, mountpoint=mapping.device,
            )  # fmt: skip
            made[mapping.volume_id] = {
                "volume_id": mapping.volume_id, "device": mapping.device,
                "bdm_id": mapping.bdm_id, "tag": mapping.tag, **connected,
            }  # fmt: skip
            record = await self.repo.merge_details(record.id, {"volumes": made}) or record
        await self._advance(record, "naming")

    async def _naming(self, record: RelocationRecord) -> None:
        disk = {"size": record.disk_size, "sha256": record.disk_sha256,
                "parts": record.details.get("parts") or []}  # fmt: skip
        r = await _granted_call(self.state, record, "PUT", "", body={"disk": disk})
        if r.status_code != 200:
            raise Refused(describe_refusal(record.peer_site, r))
        received = int(r.json()["relocation"]["received"])
        await self._advance(
            record, "sending-base" if record.mode == "mild" else "sending", done_bytes=received
        )

    async def _naming_delta(self, record: RelocationRecord) -> None:
        delta = record.details["delta"]
        r = await _granted_call(self.state, record, "PUT", "", body={"delta": delta})
        if r.status_code != 200:
            raise Refused(describe_refusal(record.peer_site, r))
        received = int(r.json()["relocation"]["received"])
        await self._advance(record, "sending-delta", done_bytes=(record.disk_size or 0) + received)

    async def _received(self, record: RelocationRecord) -> int:
        r = await _granted_call(self.state, record, "GET", "")
        if r.status_code != 200:
            raise Refused(describe_refusal(record.peer_site, r))
        return int(r.json()["relocation"]["received"])

    async def _send_chunk(
        self, record: RelocationRecord, chunk: bytes, start: int, size: int
    ) -> httpx.Response:
        headers = {
            "Content-Range": f"bytes {start}-{start + len(chunk) - 1}/{size}",
            CHUNK_SHA_HEADER: hashlib.sha256(chunk).hexdigest(),
            "Content-Type": "application/octet-stream",
        }
        return await _granted_call(
            self.state, record, "PUT", "/disk", content=chunk, headers=headers
        )

    async def _sending(self, record: RelocationRecord) -> None:
        done = await self._send(record, disk_path(self.state, record.id), record.disk_size or 0)
        await self._advance(record, "committing", done_bytes=done)

    async def _sending_base(self, record: RelocationRecord) -> None:
        """Mild: the frozen disk, the guest running meanwhile; then it stops."""
        done = await self._send(record, disk_path(self.state, record.id), record.disk_size or 0)
        await self._advance(record, "stopping", done_bytes=done)

    async def _sending_delta(self, record: RelocationRecord) -> None:
        size, before = int(record.details["delta"]["size"]), record.disk_size or 0
        path = disk_path(self.state, record.id, "delta")
        done = await self._send(record, path, size, before=before)
        await self._advance(record, "committing", done_bytes=before + done)

    async def _send(self, record: RelocationRecord, path: Path, size: int, before: int = 0) -> int:
        """The file from where the destination's ends, ``IN_FLIGHT`` chunks sent before
        the first is answered (the destination appends them in order), answers taken in
        order; throttled (``relocation_bytes_per_second``), one at a time. The journal's
        bytes count ``before`` (the files sent before this one) and this one's."""
        settings = self.state.ctx.settings
        done = await self._received(record)
        rate = settings.relocation_bytes_per_second
        window = 1 if rate > 0 else IN_FLIGHT
        started, sent = self.clock(), 0
        flight: collections.deque[tuple[int, asyncio.Task[httpx.Response]]] = collections.deque()
        queued = done  # where the next chunk to send starts
        try:
            while done < size:
                while len(flight) < window and queued < size:
                    length = min(settings.relocation_chunk_bytes, size - queued)
                    chunk = await asyncio.to_thread(_read, path, queued, length)
                    task = asyncio.create_task(self._send_chunk(record, chunk, queued, size))
                    flight.append((length, task))
                    queued += length
                length, task = flight.popleft()
                r = await task
                if r.status_code == 409:  # it has another count: ask it where to go on
                    await _cancelled(flight)
                    done = queued = await self._received(record)
                    continue
                if r.status_code != 200:
                    raise Refused(describe_refusal(record.peer_site, r))
                done = int(r.json()["relocation"]["received"])
                sent += length
                # The link answers again: a cut's "(retrying)" is no longer what happens.
                await self.repo.change(record.id, done_bytes=before + done, error=None)
                if rate > 0:  # throttled: never ahead of rate bytes a second
                    ahead = sent / rate - (self.clock() - started)
                    if ahead > 0:
                        await self.sleep(ahead)
        finally:
            await _cancelled(flight)
        return done

    async def _committing(self, record: RelocationRecord) -> None:
        volumes = list((record.details.get("volumes") or {}).values())
        r = await _granted_call(self.state, record, "POST", "/commit", body={"volumes": volumes})
        if r.status_code == 400:  # its file did not hash as named: send it again
            again = "sending-delta" if record.mode == "mild" else "sending"
            await self.repo.change(record.id, expect=["committing"], phase=again)
            return
        if r.status_code != 202:
            raise Refused(describe_refusal(record.peer_site, r))
        await self._advance(record, "starting", details={**record.details,
                            "committed_at": self.clock()})  # fmt: skip

    async def _starting(self, record: RelocationRecord) -> None:
        settings = self.state.ctx.settings
        deadline = self.clock() + settings.relocation_start_timeout_seconds
        delay = 0.2
        while True:
            r = await _granted_call(self.state, record, "GET", "")
            if r.status_code != 200:
                raise Refused(describe_refusal(record.peer_site, r))
            if record.error is not None:  # a cut's "(retrying)": the link answers again
                record = await self.repo.change(record.id, error=None) or record
            server = r.json()["relocation"].get("server") or {}
            status = server.get("status")
            if status == ("ACTIVE" if record.was_running else "SHUTOFF"):
                await self._advance(record, "finishing")
                return
            if status in ("ERROR", "DELETED"):
                fault = (server.get("fault") or {}).get("message") or status
                raise Refused(f"the server did not start at {record.peer_site}: {fault}")
            if self.clock() >= deadline:
                raise Refused(
                    f"the server was not ACTIVE at {record.peer_site} within "
                    f"{settings.relocation_start_timeout_seconds:g} s"
                )
            await self.sleep(delay)
            delay = min(delay * 1.5, 5.0)

    async def _finishing(self, record: RelocationRecord) -> None:
        """The guest answers at the destination: remove it here."""
        state = self.state
        with contextlib.suppress(DriverError):
            await state.driver.destroy(record.server_id)
        await state.networks.delete_ports_of_device(record.server_id)
        server = await state.servers.get(record.server_id)
        if server is not None and state.ctx.volumes is not None:
            for mapping in mappings_of(server.volumes):  # the old guest's attachments
                if mapping.attachment_id is not None and mapping.site in (None, state.ctx.name):
                    await state.ctx.volumes.release(attachment_id=mapping.attachment_id)
            moved = [v["id"] for v in record.details.get("moved_volumes") or []]
            for volume_id in moved:  # at the destination now, plugged into the server there
                await state.ctx.volumes.delete(volume_id=volume_id)
            if moved:
                await self.repo.merge_details(record.id, {"volumes_deleted": moved})
        await state.servers.update(
            record.server_id,
            deleted=True,
            vm_state="deleted",
            task_state=None,
            power_state=int(PowerState.NOSTATE),
            terminated_at=utcnow(),
        )
        await asyncio.to_thread(_remove_files, state, record.id)
        with contextlib.suppress(LinkDown):  # its row only: the move is done either way
            await _granted_call(state, record, "POST", "/done")
        await self._advance(record, "done")
        log.info("server %s relocated to %s", record.server_id, record.peer_site)

    async def _undo(self, record: RelocationRecord, reason: str) -> None:
        """Give the server back to this site, if the destination cannot be running it."""
        state = self.state
        try:
            r = await _granted_call(state, record, "DELETE", "")
            confirmed = r.status_code in (204, 404)
        except LinkDown:
            confirmed = False
        if record.phase in COMMITTED and not confirmed:
            await self.repo.change(
                record.id,
                error=f"{reason}; {record.peer_site} has not confirmed the abort (waiting)",
            )
            return
        if record.phase in ("finishing",):
            return  # the destination runs it: going on is the only way
        log.warning("relocation %s of %s failed: %s", record.id, record.server_id, reason)
        if record.was_running and state.driver.power_state(record.server_id) != PowerState.RUNNING:
            try:
                await state.driver.start(record.server_id)
            except DriverError as exc:
                reason = f"{reason}; starting it again here failed: {exc}"
        if record.was_running and state.driver.power_state(record.server_id) == PowerState.RUNNING:
            await state.servers.update(
                record.server_id, vm_state="active", power_state=int(PowerState.RUNNING)
            )
        await state.servers.transition(record.server_id, expect_task=["relocating"],
                                       task_state=None)  # fmt: skip
        await state.servers.note_last_action(record.server_id, f"relocate failed: {reason}")
        if state.ctx.volumes is not None:  # the attachments made for the destination
            for made in (record.details.get("volumes") or {}).values():
                with contextlib.suppress(EdgefedError):
                    await state.ctx.volumes.release(attachment_id=made["attachment_id"])
        await asyncio.to_thread(_remove_files, state, record.id)
        await self.repo.change(record.id, phase="failed", error=reason)
