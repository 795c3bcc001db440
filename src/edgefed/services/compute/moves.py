"""Moves within the site, as Nova makes them: resize, cold migration, shelve, unshelve,
and live migration (its request read in ``live_migration.py``).

Every move takes the root disk along as a snapshot image (the driver's snapshot: for
QEMU one standalone qcow2), so the disk goes wherever the scheduler puts the server,
the same host or another (no shared storage is assumed):

- ``resize`` (a new flavor) and ``migrate`` (admin: the same flavor, another host):
  the guest is stopped and snapshotted into a hidden image, its old guest removed, the
  server scheduled again (migrate: never to the host it left) and spawned there from
  the snapshot with the flavor it is to have (a root disk may grow, never shrink);
  the server is then ``VERIFY_RESIZE``. ``confirmResize`` keeps it so;
  ``revertResize`` removes the new guest and spawns it again from the same snapshot
  with the old flavor on the old host. A server that was stopped stays stopped.
- ``shelve``: stopped, snapshotted (the image ``<name>-shelved``, as Nova names it) and
  removed from its host: ``SHELVED_OFFLOADED``, holding no host's capacity.
  ``unshelve`` schedules it again and spawns it from that image, which is deleted once
  it runs.

- ``os-migrateLive`` (admin): the running guest moves to another host, disks and
  memory, and runs on (the driver's ``live_migrate``); MIGRATING meanwhile, then ACTIVE
  (or PAUSED) on the new host, or as it was on its own host when the move failed.

Each step is recorded in the server's ``migration`` column before the next, so that a
site killed in the middle takes the move up where it was (``resume``): the snapshot is
taken once, and a spawn is done again only after the guest it may have left is removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from typing import Any

from starlette.requests import Request

from edgefed.api.auth import Principal
from edgefed.api.policy import require_admin
from edgefed.core.errors import BadRequest, EdgefedError
from edgefed.drivers.base import DriverError, PowerState
from edgefed.services.compute import live_migration
from edgefed.services.compute.lifecycle import fault
from edgefed.services.compute.lookups import (
    flavor_columns,
    flavor_doc,
    state_conflict,
    visible_flavor,
)
from edgefed.services.compute.quota_limits import check_server_quota
from edgefed.services.compute.scheduler import NO_VALID_HOST
from edgefed.services.compute.scheduler import Request as HostRequest
from edgefed.services.compute.state import ComputeState
from edgefed.store.compute import HostUsage, ServerRecord
from edgefed.store.schema import utcnow

log = logging.getLogger("edgefed.compute.moves")

ACTIONS = ("resize", "migrate", "confirmResize", "revertResize", "shelve", "shelveOffload",
           "unshelve", "evacuate", live_migration.ACTION)  # fmt: skip


async def begin(
    request: Request,
    principal: Principal,
    state: ComputeState,
    server: ServerRecord,
    action: str,
    data: Any,
) -> None:
    """Check the action as Nova does, record its intent, and start the move."""
    moves = Moves(state)
    if action == live_migration.ACTION:
        await live_migration.begin(request, principal, state, server, data)
        moves.start(server.id)
    elif action in ("resize", "migrate"):
        if server.vm_state not in ("active", "stopped") or server.task_state is not None:
            raise state_conflict(server, action)
        if server.volumes and state.ctx.settings.compute_driver == "qemu":
            raise BadRequest(f"Server {server.id} has volumes: detach them to {action} it.")
        if action == "resize":
            if not isinstance(data, dict) or "flavorRef" not in data:
                raise BadRequest("Invalid input for field/attribute resize: 'flavorRef' is a "
                                 "required property")  # fmt: skip
            ref = str(data["flavorRef"]).rstrip("/").rsplit("/", 1)[-1]
            try:
                flavor = await visible_flavor(state, principal, ref)
            except EdgefedError as exc:
                raise BadRequest(f"Flavor {ref} could not be found.") from exc
            if flavor.id == server.flavor_id:
                raise BadRequest("When resizing, instances must change flavor!")
            if flavor.disk < int(server.flavor.get("disk") or 0):
                raise BadRequest("Resize error: Unable to resize disk down.")
            await check_server_quota(
                state, project_id=server.project_id, count=0,
                vcpus=max(0, flavor.vcpus - server.vcpus), ram=max(0, flavor.ram - server.ram),
                metadata_items=len(server.metadata),
            )  # fmt: skip
            new = flavor_doc(flavor)
        else:
            require_admin(principal, "os_compute_api:os-migrate-server:migrate")
            new = dict(server.flavor)
        migration = {
            "kind": action,
            "old_flavor": dict(server.flavor),
            "new_flavor": new,
            "old_host": server.host,
            "old_root_image_id": server.root_image_id,
            "was_running": server.vm_state == "active",
        }
        await _start(state, server, action, ("active", "stopped"), "resize_prep", migration)
        moves.start(server.id)
    elif action == "confirmResize":
        if server.vm_state != "resized" or server.task_state is not None:
            raise state_conflict(server, action)
        await state.servers.update(
            server.id,
            vm_state="active" if server.power_state == PowerState.RUNNING else "stopped",
            migration=None,
        )
        await moves.forget_root_image((server.migration or {}).get("old_root_image_id"), server)
    elif action == "revertResize":
        if server.vm_state != "resized" or server.task_state is not None:
            raise state_conflict(server, action)
        await _start(state, server, action, ("resized",), "resize_reverting", None)
        moves.start(server.id)
    elif action == "shelve":
        allowed = ("active", "stopped", "paused", "suspended")
        if server.volumes and state.ctx.settings.compute_driver == "qemu":
            raise BadRequest(f"Server {server.id} has volumes: detach them to shelve it.")
        migration = {"kind": "shelve", "old_host": server.host,
                     "old_root_image_id": server.root_image_id}  # fmt: skip
        await _start(state, server, action, allowed, "shelving", migration)
        moves.start(server.id)
    elif action == "shelveOffload":
        if server.vm_state != "shelved_offloaded":
            raise state_conflict(server, action)
    elif action == "evacuate":
        require_admin(principal, "os_compute_api:os-evacuate")
        if server.vm_state not in ("active", "stopped", "error") or server.task_state is not None:
            raise state_conflict(server, action)
        await state.scheduler.refresh()
        refusal = state.scheduler.source.refusal(server.host) if server.host else "no host"
        if refusal is None or "locked" in refusal:
            raise BadRequest(f"Compute service of {server.host} is still in use.")
        target = data.get("host") if isinstance(data, dict) else None
        if target is not None and not isinstance(target, str):
            raise BadRequest(f"Invalid input for field/attribute host. Value: {target!r}.")
        migration = {"kind": "evacuate", "old_host": server.host, "target": target,
                     "was_running": server.vm_state != "stopped"}  # fmt: skip
        await _start(state, server, action, ("active", "stopped", "error"), "rebuilding", migration)
        moves.start(server.id)
    elif action == "unshelve":
        if server.vm_state != "shelved_offloaded" or server.task_state is not None:
            raise state_conflict(server, action)
        await _start(state, server, action, ("shelved_offloaded",), "unshelving", None)
        moves.start(server.id)


async def _start(
    state: ComputeState,
    server: ServerRecord,
    action: str,
    allowed: tuple[str, ...],
    task: str,
    migration: dict[str, Any] | None,
) -> None:
    if server.vm_state not in allowed or server.task_state is not None:
        raise state_conflict(server, action)
    values: dict[str, Any] = {"task_state": task}
    if migration is not None:
        values["migration"] = migration
    if not await state.servers.transition(server.id, expect_task=[None], **values):
        fresh = await state.servers.get(server.id)
        raise state_conflict(fresh or server, action)


class Moves:
    def __init__(self, state: ComputeState):
        self.state = state
        self.servers = state.servers
        self.driver = state.driver
        self.images = state.images

    def start(self, server_id: str) -> None:
        self.state.lifecycle.start(server_id, self._run(server_id))

    async def forget_root_image(self, image_id: str | None, server: ServerRecord) -> None:
        """Delete the hidden snapshot a confirmed move left behind (the disk's previous
        image), never the image the server was booted from."""
        if image_id is None or image_id in (server.image_id, server.root_image_id):
            return
        image = await self.images.get(image_id)
        if (
            image is not None
            and image.os_hidden
            and image.properties.get("instance_uuid") == server.id
        ):
            with contextlib.suppress(EdgefedError):
                await self.images.delete(image_id, data_dir=self.state.ctx.settings.data_dir)

    async def _run(self, server_id: str) -> None:
        server = await self.servers.get(server_id)
        if server is None:
            return
        try:
            if server.task_state in ("resize_prep", "resize_migrating", "resize_finish"):
                await self._resize(server)
            elif server.task_state == "resize_reverting":
                await self._revert(server)
            elif server.task_state == "shelving":
                await self._shelve(server)
            elif server.task_state == "unshelving":
                await self._unshelve(server)
            elif server.task_state == "rebuilding":
                await self._evacuate(server)
            elif server.task_state == live_migration.TASK:
                await self._live(server)
        except (DriverError, EdgefedError) as exc:
            message = str(exc.message if isinstance(exc, EdgefedError) else exc)
            log.warning("%s of %s failed: %s", server.task_state, server_id, message)
            await self.servers.update(
                server_id, vm_state="error", task_state=None,
                fault=fault(f"{server.task_state} failed: {message}"),
            )  # fmt: skip

    # -- the steps ---------------------------------------------------------------------

    async def _capture(self, server: ServerRecord, name: str, *, hidden: bool) -> ServerRecord:
        """Stop the guest and snapshot its disk into a new image, once (recorded)."""
        migration = dict(server.migration or {})
        if migration.get("image_id"):
            return server
        if self.driver.power_state(server.id) == PowerState.RUNNING:
            await self.driver.stop(server.id)
        source = await self.images.get(server.image_id) if server.image_id else None
        image = await self.images.create(
            owner=server.project_id,
            name=name,
            disk_format=source.disk_format if source else "qcow2",
            container_format="bare",
            visibility="private",
            os_hidden=hidden,
            min_disk=int(server.flavor.get("disk") or 0),
            properties={"image_type": "snapshot", "instance_uuid": server.id},
        )
        try:
            await self.state.lifecycle.store_snapshot(server.id, image.id)
        except (DriverError, EdgefedError):
            with contextlib.suppress(EdgefedError):
                await self.images.delete(image.id, data_dir=self.state.ctx.settings.data_dir)
            raise
        migration["image_id"] = image.id
        return await self.servers.update(
            server.id, migration=migration, power_state=int(PowerState.SHUTDOWN)
        )

    async def _remove_guest(self, server: ServerRecord) -> None:
        with contextlib.suppress(DriverError):
            await self.driver.destroy(server.id)

    async def _place(
        self, server: ServerRecord, flavor: dict[str, Any], *, avoid: str | None
    ) -> str:
        scheduler = self.state.scheduler
        await scheduler.refresh()
        reasons: list[str] = []
        if avoid is not None:
            reasons.append(f"{avoid} is the host it leaves")
        request = HostRequest(
            vcpus=int(flavor["vcpus"]), ram_mb=int(flavor["ram"]),
            disk_gb=int(flavor.get("disk") or 0) + int(flavor.get("ephemeral") or 0),
            availability_zone=server.availability_zone,
        )  # fmt: skip
        usages = await self.servers.host_usages()
        if server.host in usages:  # what it holds now is its own to reuse
            mine = usages[server.host]
            usages[server.host] = HostUsage(
                host=mine.host, vcpus=max(0, mine.vcpus - server.vcpus),
                ram_mb=max(0, mine.ram_mb - server.ram), disk_gb=max(0, mine.disk_gb - server.disk),
            )  # fmt: skip
        if avoid is not None:  # as if full: never chosen
            usages[avoid] = HostUsage(host=avoid, vcpus=1 << 40, ram_mb=1 << 40, disk_gb=1 << 40)
        chosen = scheduler.choose(request, usages, reasons=reasons)
        if chosen is None:
            reasons = [r for r in reasons if not (avoid and r.startswith(f"{avoid} has no room"))]
            raise EdgefedError(f"{NO_VALID_HOST}({'; '.join(reasons) or 'no other host'})")
        return chosen

    async def _spawn(self, server: ServerRecord, *, running: bool) -> ServerRecord:
        await self._remove_guest(server)  # whatever a spawn cut short left there
        spec = await self.state.lifecycle._spec(server)
        # A stopped server's guest is made stopped: never booted (its user data run) only
        # to be powered off, which a guest still booting ignores until the hard stop.
        await self.driver.spawn(dataclasses.replace(spec, power_on=running))
        return server

    async def _resize(self, server: ServerRecord) -> None:
        migration = dict(server.migration or {})
        if server.task_state == "resize_prep":
            server = await self._capture(server, f"{server.name}-resize", hidden=True)
            await self._remove_guest(server)
            migration = dict(server.migration or {})
            new = migration["new_flavor"]
            avoid = migration["old_host"] if migration["kind"] == "migrate" else None
            host = await self._place(server, new, avoid=avoid)
            server = await self.servers.update(
                server.id, task_state="resize_migrating", host=host,
                root_image_id=migration["image_id"], **flavor_columns(new),
            )  # fmt: skip
        if server.task_state == "resize_migrating":
            await self._spawn(server, running=bool(migration.get("was_running")))
            server = await self.servers.update(server.id, task_state="resize_finish")
        running = bool(migration.get("was_running"))
        await self.servers.update(
            server.id, vm_state="resized", task_state=None,
            power_state=int(PowerState.RUNNING if running else PowerState.SHUTDOWN),
        )  # fmt: skip

    async def _revert(self, server: ServerRecord) -> None:
        migration = dict(server.migration or {})
        old = migration["old_flavor"]
        await self._remove_guest(server)
        server = await self.servers.update(
            server.id, host=migration["old_host"], **flavor_columns(old)
        )
        running = bool(migration.get("was_running"))
        await self._spawn(server, running=running)
        await self.servers.update(
            server.id, vm_state="active" if running else "stopped", task_state=None,
            power_state=int(PowerState.RUNNING if running else PowerState.SHUTDOWN),
            migration=None,
        )  # fmt: skip

    async def _shelve(self, server: ServerRecord) -> None:
        server = await self._capture(server, f"{server.name}-shelved", hidden=False)
        await self._remove_guest(server)
        migration = dict(server.migration or {})
        await self.servers.update(
            server.id, vm_state="shelved_offloaded", task_state=None, host=None,
            power_state=int(PowerState.SHUTDOWN), root_image_id=migration["image_id"],
            migration=None,
        )  # fmt: skip

    async def _unshelve(self, server: ServerRecord) -> None:
        if server.host is None:
            host = await self._place(server, dict(server.flavor), avoid=None)
            server = await self.servers.update(server.id, host=host)
        await self.state.lifecycle._plug_network(server)
        await self._spawn(server, running=True)
        # The disk runs from the agent's copy; Nova deletes the shelved image once the
        # server runs again (a later move snapshots the disk anew).
        shelved = server.root_image_id
        if shelved is not None and shelved != server.image_id:
            image = await self.images.get(shelved)
            if image is not None and image.name == f"{server.name}-shelved":
                with contextlib.suppress(EdgefedError):
                    await self.images.delete(shelved, data_dir=self.state.ctx.settings.data_dir)
                await self.servers.update(server.id, root_image_id=None)
        await self.servers.update(
            server.id, vm_state="active", task_state=None,
            power_state=int(PowerState.RUNNING), launched_at=utcnow(), fault=None,
        )  # fmt: skip

    async def _evacuate(self, server: ServerRecord) -> None:
        """Its host is down: rebuilt on another from its image (its disk stayed there,
        as with Nova without shared storage); the host, back, destroys its old guest."""
        migration = dict(server.migration or {})
        old = migration.get("old_host")
        if server.host == old:
            if migration.get("target"):
                host = str(migration["target"])
                if host == old or host not in {h.name for h in self.state.scheduler.source.hosts()}:
                    raise EdgefedError(f"{NO_VALID_HOST}(host {host} cannot take it)")
            else:
                host = await self._place(server, dict(server.flavor), avoid=old)
            server = await self.servers.update(server.id, host=host)
        running = bool(migration.get("was_running", True))
        await self._spawn(server, running=running)
        await self.servers.update(
            server.id, vm_state="active" if running else "stopped", task_state=None,
            power_state=int(PowerState.RUNNING if running else PowerState.SHUTDOWN),
            migration=None, fault=None,
        )  # fmt: skip

    async def _live(self, server: ServerRecord) -> None:
        """The running guest moved to another host by the driver; the server back as it
        was, on its host, when the move fails (the guest runs there still)."""
        migration = dict(server.migration or {})
        source = str(migration.get("old_host") or server.host)
        vm_state = str(migration.get("vm_state") or "active")
        destination: str | None = migration.get("target")
        # Recorded before the driver starts: a site restarted meanwhile takes the move
        # up (settled where the guest arrived, else undone) instead of forgetting it.
        resume = "destination" in migration
        destination = migration.get("destination") or destination
        started = utcnow()
        try:
            if destination is None:
                destination = await self._place(server, dict(server.flavor), avoid=source)
            if not resume:
                migration["destination"] = destination
                server = await self.servers.update(server.id, migration=migration)
            spec = await self.state.lifecycle._spec(server)
            figures = await self.driver.live_migrate(
                dataclasses.replace(spec, host=destination), source=source, resume=resume
            )
        except (DriverError, EdgefedError) as exc:
            message = str(exc.message if isinstance(exc, EdgefedError) else exc)
            log.warning("live migration of %s from %s failed: %s", server.id, source, message)
            await self.servers.update(
                server.id, vm_state=vm_state, task_state=None, host=source, migration=None
            )
            await self.servers.note_last_action(
                server.id, f"live-migration to {destination or 'another host'} failed: {message}"
            )
            return
        seconds = (utcnow() - started).total_seconds()
        log.info(
            "live migration of %s from %s to %s: downtime %.0f ms (QEMU), %.1f s in all",
            server.id, source, destination, figures.get("downtime_ms", 0.0), seconds,
        )  # fmt: skip
        power = PowerState.PAUSED if vm_state == "paused" else PowerState.RUNNING
        volumes = self.state.ctx.volumes
        if server.volumes and volumes is not None:  # the attachments name the new host
            try:
                await volumes.rehost(server_id=server.id, host=destination)
            except EdgefedError as exc:  # the guest runs there all the same
                log.warning("attachments of %s not moved to %s: %s", server.id, destination, exc)
        await self.servers.update(
            server.id, vm_state=vm_state, task_state=None, host=destination, migration=None,
            power_state=int(power),
        )  # fmt: skip
