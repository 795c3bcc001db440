"""Server lifecycles: the asynchronous half of every server operation.

The API validates a request, records the intent in the store (``task_state``) and
answers at once (202/204); the work (schedule, plug the network, ask the driver, record
the result) then runs here as a background task. Because the intent is persisted first,
a site killed mid-operation finds it again at start: ``recover`` re-adopts the running
instances into the driver and finishes (or fails, with a fault) every operation that
was under way, so no server stays stuck in BUILD or in a transition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgefed.core.errors import EdgefedError
from edgefed.drivers.base import (
    ComputeDriver,
    DriverError,
    HostUnavailable,
    InstanceSpec,
    PowerState,
)
from edgefed.services.compute.boot_volumes import (
    EndFor,
    complete_volumes,
    connect_volumes,
    release_volumes,
)
from edgefed.services.compute.instance_spec import instance_spec
from edgefed.services.compute.scheduler import NO_VALID_HOST, Request, Scheduler
from edgefed.store.compute import ServerRecord, ServerRepository, ServerVolumes
from edgefed.store.image import BlobStore, ImageRepository
from edgefed.store.network import NetworkRepository
from edgefed.store.schema import utcnow

log = logging.getLogger("edgefed.compute.lifecycle")

BUILD_TASKS = ("scheduling", "block_device_mapping", "networking", "spawning")
# Moves within the site (moves.py), taken up at start by ``resume_move``.
MOVE_TASKS = ("resize_prep", "resize_migrating", "resize_finish", "resize_reverting",
              "shelving", "unshelving", "rebuilding", "migrating")  # fmt: skip

# task_state -> (driver method name, vm_state when done, power state when done)
POWER_OPS: dict[str, tuple[str, str, PowerState]] = {
    "powering-off": ("stop", "stopped", PowerState.SHUTDOWN),
    "powering-on": ("start", "active", PowerState.RUNNING),
    "rebooting": ("reboot_soft", "active", PowerState.RUNNING),
    "rebooting_hard": ("reboot_hard", "active", PowerState.RUNNING),
    "pausing": ("pause", "paused", PowerState.PAUSED),
    "unpausing": ("unpause", "active", PowerState.RUNNING),
    "suspending": ("suspend", "suspended", PowerState.SUSPENDED),
    "resuming": ("resume", "active", PowerState.RUNNING),
}


def fault(message: str, *, code: int = 500, details: str = "") -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "details": details,
        "created": utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


class ServerLifecycle:
    def __init__(
        self,
        *,
        servers: ServerRepository,
        networks: NetworkRepository,
        images: ImageRepository,
        driver: ComputeDriver,
        scheduler: Scheduler,
        data_dir: Path,
        max_image_bytes: int,
        volume_end: EndFor = lambda mapping: None,
    ):
        self.servers = servers
        self.networks = networks
        self.images = images
        self.driver = driver
        self.scheduler = scheduler
        self.data_dir = data_dir
        self.max_image_bytes = max_image_bytes
        self.volume_end = volume_end  # where each of a server's volumes lives
        self._tasks: dict[str, asyncio.Task[None]] = {}

    # -- task bookkeeping -----------------------------------------------------------
    def _run(self, server_id: str, work: Coroutine[Any, Any, None]) -> None:
        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("operation on server %s failed", server_id)
                with contextlib.suppress(Exception):
                    await self.servers.update(
                        server_id,
                        vm_state="error",
                        task_state=None,
                        fault=fault("An unexpected error stopped the operation."),
                    )

        task = asyncio.get_running_loop().create_task(guarded(), name=f"server-{server_id}")
        self._tasks[server_id] = task
        task.add_done_callback(lambda t: self._forget(server_id, t))

    def _forget(self, server_id: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(server_id) is task:
            del self._tasks[server_id]

    async def idle(self, timeout: float = 10.0) -> None:
        """Wait until no operation is running (tests and shutdown)."""
        async with asyncio.timeout(timeout):
            while self._tasks:
                await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    # -- operations started by the API ------------------------------------------------
    def start_build(self, server_id: str) -> None:
        self._run(server_id, self._build(server_id))

    def start_power_op(self, server_id: str, task_state: str) -> None:
        self._run(server_id, self._power_op(server_id, task_state))

    def start_delete(self, server_id: str) -> None:
        running = self._tasks.pop(server_id, None)
        if running is not None:
            running.cancel()
        self._run(server_id, self._delete(server_id, after=running))

    def start_snapshot(self, server_id: str, image_id: str) -> None:
        self._run(server_id, self._snapshot(server_id, image_id))

    # Set by moves.py: takes up a move a stop interrupted.
    resume_move: Callable[[str], None] = staticmethod(lambda server_id: None)

    def start(self, server_id: str, work: Coroutine[Any, Any, None]) -> None:
        """Run another operation on the server in the background (moves.py), with the
        same bookkeeping: a delete cancels it, a crash leaves the server in ERROR."""
        self._run(server_id, work)

    # -- the work -------------------------------------------------------------------
    async def _fail_build(self, server: ServerRecord, message: str, *, details: str = "") -> None:
        await self.servers.update(
            server.id,
            vm_state="error",
            task_state=None,
            power_state=int(PowerState.NOSTATE),
            host=None,
            fault=fault(message, details=details),
        )

    async def _build(self, server_id: str) -> None:
        server = await self.servers.get(server_id)
        if server is None or server.vm_state != "building":
            return
        host = server.host
        if host is None:
            request = Request(
                vcpus=server.vcpus,
                ram_mb=server.ram,
                disk_gb=server.disk,
                availability_zone=server.availability_zone,
            )
            await self.scheduler.refresh()
            reasons: list[str] = []
            host = await self.servers.claim_host(
                server_id,
                choose=lambda usages: self.scheduler.choose(request, usages, reasons=reasons),
            )
            if host is None:
                detail = "; ".join(reasons) if reasons else "the site has no compute host"
                await self._fail_build(server, f"{NO_VALID_HOST}({detail})")
                return
        server = await self.servers.update(server_id, task_state="networking", host=host)
        try:
            await self._plug_network(server)
        except EdgefedError as exc:
            await self._fail_build(server, f"Build of instance {server_id} aborted: {exc.message}")
            return
        volumes = ServerVolumes(self.servers.store)
        if server.volumes:
            server = await self.servers.update(server_id, task_state="block_device_mapping")
            try:
                await connect_volumes(self.volume_end, volumes, server)
            except EdgefedError as exc:
                message = f"Build of instance {server_id} aborted: {exc.message}"
                await self._fail_build(server, message)
                return
        server = await self.servers.update(server_id, task_state="spawning")
        # A server relocated here stopped is made stopped (relocation_in.py).
        power_on = (server.migration or {}).get("power_on", True) is not False
        try:
            await self.driver.spawn(replace(await self._spec(server), power_on=power_on))
        except DriverError as exc:
            await self._fail_build(server, f"Build of instance {server_id} aborted: {exc}")
            return
        if server.volumes:
            await complete_volumes(self.volume_end, volumes, server_id)
        await self.servers.transition(
            server_id,
            expect_task=["spawning"],
            vm_state="active" if power_on else "stopped",
            task_state=None,
            power_state=int(PowerState.RUNNING if power_on else PowerState.SHUTDOWN),
            launched_at=utcnow(),
            fault=None,
            migration=None,
        )

    async def _spec(self, server: ServerRecord) -> InstanceSpec:
        return await instance_spec(
            server, images=self.images, networks=self.networks, data_dir=self.data_dir
        )

    async def _plug_network(self, server: ServerRecord) -> None:
        """Give the server its ports (idempotent: a recovered build keeps its ports)."""
        if await self.networks.list_ports(device_id=server.id):
            return
        requested = server.requested_networks
        if requested in (None, "none"):
            return
        group = await self.networks.ensure_default_security_group(server.project_id)
        plug: dict[str, Any] = {
            "device_id": server.id,
            "device_owner": f"compute:{server.availability_zone or 'nova'}",
            "status": "ACTIVE",
            "security_groups": [group.id],
        }
        if requested == "auto":
            default = await self.networks.ensure_default_network(server.project_id)
            await self.networks.create_port(network=default, project_id=server.project_id, **plug)
            return
        for item in requested:
            if item.get("port"):
                # Checked by the API, and again here: the port may have changed hands since.
                port = await self.networks.get_port(item["port"])
                if port is None or port.project_id != server.project_id:
                    raise EdgefedError(f"Port id {item['port']} could not be found.")
                if port.device_id and port.device_id != server.id:
                    raise EdgefedError(f"Port {item['port']} is still in use.")
                await self.networks.update_port(item["port"], **plug)
                continue
            network = await self.networks.get_network(item["uuid"])
            if network is None:
                raise EdgefedError(f"Network {item['uuid']} could not be found.")
            fixed = [{"ip_address": item["fixed_ip"]}] if item.get("fixed_ip") else None
            await self.networks.create_port(
                network=network, project_id=server.project_id, requested_ips=fixed, **plug
            )

    async def _power_op(self, server_id: str, task_state: str) -> None:
        method, vm_state, power = POWER_OPS[task_state]
        call: Callable[[str], Awaitable[None]]
        if method == "reboot_soft":
            call = lambda i: self.driver.reboot(i, hard=False)  # noqa: E731
        elif method == "reboot_hard":
            call = lambda i: self.driver.reboot(i, hard=True)  # noqa: E731
        else:
            call = getattr(self.driver, method)
        try:
            await call(server_id)
        except HostUnavailable as exc:
            # Nothing is known of the guest: shown as SHUTOFF, with the reason (in the
            # fault, and as the action's message: the API shows a fault in ERROR only).
            await self.servers.note_last_action(server_id, f"{method} failed: {exc}")
            await self.servers.transition(
                server_id,
                expect_task=[task_state],
                vm_state="stopped",
                task_state=None,
                power_state=int(PowerState.NOSTATE),
                fault=fault(f"{method} failed: {exc}", code=503),
            )
            return
        except DriverError as exc:
            await self.servers.transition(
                server_id,
                expect_task=[task_state],
                task_state=None,
                fault=fault(f"{method} failed: {exc}"),
            )
            return
        await self.servers.transition(
            server_id,
            expect_task=[task_state],
            vm_state=vm_state,
            task_state=None,
            power_state=int(power),
        )

    async def _delete(self, server_id: str, *, after: asyncio.Task[None] | None) -> None:
        if after is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await after
        try:
            await self.driver.destroy(server_id)
        except DriverError as exc:
            log.warning("destroying %s: %s (the record is deleted anyway)", server_id, exc)
        await self.networks.delete_ports_of_device(server_id)
        gone = await self.servers.get(server_id, include_deleted=True)
        if gone is not None:
            await release_volumes(self.volume_end, gone)
        await self.servers.update(
            server_id,
            deleted=True,
            vm_state="deleted",
            task_state=None,
            power_state=int(PowerState.NOSTATE),
            terminated_at=utcnow(),
        )
        if gone is not None:
            await self._forget_own_images(gone)

    async def _forget_own_images(self, server: ServerRecord) -> None:
        """The hidden images made for this server alone (its disk moved here, or
        snapshotted by a move, and the kernel and ramdisk moved with it) go with it."""
        own = {server.image_id, server.root_image_id} - {None}
        booted = await self.images.get(server.image_id) if server.image_id else None
        if booted is not None and booted.os_hidden:
            own |= {str(booted.properties.get(k) or "") for k in ("kernel_id", "ramdisk_id")}
        for image_id in own - {""}:
            assert image_id is not None
            image = await self.images.get(image_id)
            if (
                image is not None
                and image.os_hidden
                and image.properties.get("instance_uuid") == server.id
            ):
                with contextlib.suppress(EdgefedError):
                    await self.images.delete(image_id, data_dir=self.data_dir)

    async def store_snapshot(self, server_id: str, image_id: str) -> None:
        """The server's disk, as the driver snapshots it, becomes the data of the
        (queued) image ``image_id``; DriverError or EdgefedError when it cannot."""
        snap = await self.driver.snapshot(server_id)
        # The data's format, whatever the source image's was (QEMU writes qcow2).
        if snap.disk_format is not None:
            await self.images.update(image_id, disk_format=snap.disk_format)
        await self.images.begin_upload(image_id)
        blobs = BlobStore(self.data_dir)
        if snap.path is not None:
            try:
                pending = await blobs.write_file(snap.path, max_bytes=self.max_image_bytes)
            finally:
                if snap.temporary:
                    snap.path.unlink(missing_ok=True)
        else:
            pending = await blobs.write_bytes(snap.data or b"", max_bytes=self.max_image_bytes)
        await self.images.finish_upload(image_id, pending=pending, blobs=blobs)

    async def _snapshot(self, server_id: str, image_id: str) -> None:
        try:
            await self.store_snapshot(server_id, image_id)
        except (DriverError, EdgefedError) as exc:
            log.warning("snapshot of %s into image %s failed: %s", server_id, image_id, exc)
            with contextlib.suppress(EdgefedError):
                await self.images.update(image_id, status="killed")
        finally:
            await self.servers.transition(
                server_id, expect_task=["image_snapshot"], task_state=None
            )

    # -- what the hypervisor reports -----------------------------------------------------
    async def power_changed(self, server_id: str, power: PowerState) -> None:
        """A guest changed by itself, or its host reported it after a restart: record it
        (Nova's power state sync). A guest that powered off makes its server SHUTOFF; a
        guest its host no longer has makes it ERROR; a guest of a deleted server is
        destroyed. Servers with an operation under way are left to it."""
        server = await self.servers.get(server_id, include_deleted=True)
        if server is None:
            return
        if server.vm_state == "deleted":
            if power != PowerState.NOSTATE and server_id not in self._tasks:
                log.info("destroying the guest of deleted server %s", server_id)
                self._run(server_id, self._reap(server_id))
            return
        if server.task_state is not None or server.vm_state in ("building", "error"):
            return
        changes: dict[str, Any] = {"power_state": int(power)}
        if power == PowerState.NOSTATE:
            changes.update(
                vm_state="error",
                fault=fault(f"The guest of server {server_id} is gone from host {server.host}."),
            )
        elif server.vm_state == "active" and power in (PowerState.SHUTDOWN, PowerState.CRASHED):
            changes["vm_state"] = "stopped"
        elif server.vm_state == "stopped" and power == PowerState.RUNNING:
            changes["vm_state"] = "active"
        if server.power_state == int(power) and len(changes) == 1:
            return
        log.info("server %s: the hypervisor reports power state %s", server_id, power.name)
        await self.servers.transition(server_id, expect_task=[None], **changes)

    async def _reap(self, server_id: str) -> None:
        try:
            await self.driver.destroy(server_id)
        except DriverError as exc:
            log.warning("destroying the guest of deleted server %s: %s", server_id, exc)

    # -- after a restart --------------------------------------------------------------
    async def recover(self) -> int:
        """Re-adopt live instances and finish the operations a stop interrupted."""
        live = await self.servers.list_all(project_id=None)
        adopted = []
        for server in live:
            if server.host and server.vm_state in (
                "active",
                "stopped",
                "paused",
                "suspended",
                "resized",
            ):
                adopted.append((await self._spec(server), PowerState(server.power_state)))
        self.driver.adopt(adopted)
        resumed = 0
        for server in live:
            task = server.task_state
            if task is None and server.vm_state != "building":
                continue
            resumed += 1
            log.info("recovering server %s (%s/%s)", server.id, server.vm_state, task)
            if server.vm_state == "building":
                self.start_build(server.id)
            elif task in POWER_OPS:
                self.start_power_op(server.id, task)
            elif task == "deleting":
                self.start_delete(server.id)
            elif task == "relocating":
                continue  # the relocation's journal takes it up (relocation_out.py)
            elif task in MOVE_TASKS:
                self.resume_move(server.id)
            else:
                await self.servers.update(server.id, task_state=None)
        return resumed
