"""``QemuHypervisor``: real QEMU guests on this host, behind the driver's operations.

It runs in the host agent, one per host, over one state directory (``layout.py``).
The operations are those of ``drivers.base.ComputeDriver``, by instance id, plus
what only a real hypervisor has: console output, diagnostics, hot-plug of block
devices, and an asynchronous ``adopt`` that finds the guests still running after the
agent restarted. ``spawn`` takes a ``GuestSpec`` (``GuestSpec.from_instance`` maps the
compute service's ``InstanceSpec``) since a real guest needs NICs, keys and images the
fake never did.

Operations on one guest are serialised by its lock; different guests proceed in
parallel. The hypervisor keeps nothing that matters in memory: closing it (or killing
its process) leaves every guest running, and a new one over the same state directory
carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import time
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any

from edgefed.drivers.base import HypervisorInfo, PowerState, Snapshot
from edgefed.drivers.qemu import accel, configdrive, layers, transfer
from edgefed.drivers.qemu import live as migration
from edgefed.drivers.qemu.cmdline import PCI, DiskPlan, LaunchPlan, NicPlan
from edgefed.drivers.qemu.disks import GiB, ScratchBases, create_root_disk, join_layers
from edgefed.drivers.qemu.errors import GuestNotFound, QemuError
from edgefed.drivers.qemu.guest import Guest
from edgefed.drivers.qemu.images import ImageCache
from edgefed.drivers.qemu.layout import GuestFiles, StateLayout
from edgefed.drivers.qemu.process import running_pid
from edgefed.drivers.qemu.pvh import pvh_kernel
from edgefed.drivers.qemu.relay import NbdRelays
from edgefed.drivers.qemu.settings import PowerListener, QemuSettings
from edgefed.drivers.qemu.spec import BlockDevice, GuestSpec, ImageSource, canonical_uuid


class QemuHypervisor:
    name = "qemu"

    def __init__(
        self,
        *,
        state_dir: Path,
        settings: QemuSettings | None = None,
        on_change: PowerListener | None = None,
    ) -> None:
        self.settings = settings or QemuSettings()
        self.layout = StateLayout(state_dir)
        self.images = ImageCache(self.layout.images, qemu_img=self.settings.qemu_img)
        self.scratch = ScratchBases(self.layout.images, qemu_img=self.settings.qemu_img)
        self.on_change = on_change
        self._facts: accel.HostFacts | None = None
        self._guests: dict[str, Guest] = {}
        # NBD disks of guests in a namespace reach their exports through these (relay.py)
        self.relays = NbdRelays()
        # Guests arriving by live migration, until settled (live.py)
        self._incoming: dict[str, migration.Incoming] = {}
        self._maintenance: asyncio.Task[None] | None = None

    async def open(self) -> accel.HostFacts:
        """Prepare the state directory and decide the accelerator; idempotent."""
        if self._facts is None:
            self.layout.prepare()
            forced = None if self.settings.accel == "auto" else self.settings.accel
            self._facts = await accel.host_facts(
                state_dir=self.layout.root,
                qemu=self.settings.qemu,
                forced=forced,
                deadline=self.settings.probe_deadline,
            )
            self._maintenance = asyncio.create_task(self._maintain(), name="qemu-maintenance")
        return self._facts

    async def __aenter__(self) -> QemuHypervisor:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def facts(self) -> accel.HostFacts:
        if self._facts is None:
            raise QemuError("the hypervisor is not open yet (await open())")
        return self._facts

    async def close(self) -> None:
        """Let go of every guest (they keep running) and stop the maintenance loop and
        the NBD relays (their guests' I/O waits for the next agent's ``adopt()``)."""
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
            self._maintenance = None
        for guest in self._guests.values():
            await guest.detach()
        self._guests.clear()
        await self.relays.close_all()
        self.layout.remove_alias()
        self._facts = None

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self.settings.maintenance_interval)
            for guest in list(self._guests.values()):
                with contextlib.suppress(OSError):
                    guest.console.rotate()

    # -- guests by id ------------------------------------------------------------------

    def _load(self, instance_id: str) -> Guest:
        try:
            guest_id = canonical_uuid(instance_id)
        except QemuError:
            raise GuestNotFound(instance_id) from None
        guest = self._guests.get(guest_id)
        if guest is not None:
            return guest
        files = self.layout.guest(guest_id)
        try:
            plan = LaunchPlan.from_json(files.record.read_text())
        except (OSError, ValueError, TypeError, KeyError):
            raise GuestNotFound(instance_id) from None
        guest = self._guest(files, plan)
        self._guests[guest_id] = guest
        return guest

    def _guest(self, files: GuestFiles, plan: LaunchPlan) -> Guest:
        return Guest(
            files=files,
            plan=plan,
            settings=self.settings,
            on_change=self.on_change,
            relays=self.relays,
        )

    def guest_ids(self) -> list[str]:
        """Every guest this host has (running or not), from the state directory."""
        return self.layout.guest_ids()

    async def adopt(self) -> dict[str, PowerState]:
        """After a restart: attach to every running guest, whose NBD relays start again;
        each guest's power state."""
        await self.open()
        states: dict[str, PowerState] = {}
        for guest_id in self.guest_ids():
            guest = self._load(guest_id)
            async with guest.lock:
                with contextlib.suppress(QemuError):
                    if await guest.attach():
                        await self.relays.open_all(guest.plan)
            states[guest_id] = guest.power_state()
        return states

    def power_state(self, instance_id: str) -> PowerState:
        try:
            return self._load(instance_id).power_state()
        except GuestNotFound:
            return PowerState.NOSTATE

    def hypervisor(self, host: str) -> HypervisorInfo:
        return HypervisorInfo(
            hypervisor_type=self.facts.hypervisor_type,
            hypervisor_version=self.facts.hypervisor_version,
            host_ip=self.settings.host_ip,
        )

    # -- spawn and destroy ------------------------------------------------------------------

    async def spawn(self, spec: GuestSpec) -> None:
        """Disks, config drive, QEMU: returns once the guest runs (not once it booted);
        ``power_on=False``: all but QEMU, the guest left stopped (``start`` runs it)."""
        facts = await self.open()
        with contextlib.suppress(GuestNotFound):
            existing = self._load(spec.id)
            async with existing.lock:
                if await existing.attach():
                    await self.relays.open_all(existing.plan)
                    return  # a spawn that already happened (the service retried after a crash)
            await self.destroy(spec.id)
        async with self._made(spec, facts.accel) as guest:
            if spec.power_on:
                await guest.launch()

    @contextlib.asynccontextmanager
    async def _made(self, spec: GuestSpec, accel_name: str) -> AsyncIterator[Guest]:
        """The guest's files and plan made, the guest kept and its plan saved: the guest,
        under its lock; all of it discarded if this or what runs under it fails."""
        files = self.layout.guest(spec.id)
        files.directory.mkdir(mode=0o700)
        guest: Guest | None = None
        try:
            plan = await self._prepare(spec, files, accel_name)
            guest = self._guest(files, plan)
            self._guests[spec.id] = guest
            async with guest.lock:
                guest.save_plan()
                yield guest
        except BaseException:
            await self._discard(spec.id, guest, files)
            raise

    async def _discard(self, guest_id: str, guest: Guest | None, files: GuestFiles) -> None:
        """What a spawn (or a migration's arrival) cut short made of a guest, removed."""
        if guest is not None:
            with contextlib.suppress(Exception):
                await guest.hard_stop()
            await self.relays.close_all(guest.plan)
        self._guests.pop(guest_id, None)
        await asyncio.to_thread(shutil.rmtree, files.directory, True)

    async def _prepare(self, spec: GuestSpec, files: GuestFiles, accel_name: str) -> LaunchPlan:
        jobs: list[Coroutine[Any, Any, object]] = []
        sockets = transfer.relay_sockets(files, spec.netns)
        if spec.root_volume is not None:  # boot from volume: the volume is the disk
            root = spec.root_volume
            disks = [
                transfer.disk_of(files.directory, root, node="root", boot=True, sockets=sockets)
            ]
        else:
            assert spec.image is not None  # GuestSpec holds one or the other
            base = await self.images.ensure(
                spec.image.path,
                checksum=spec.image.checksum,
                declared_format=spec.image.disk_format,
                root_disk_bytes=spec.root_gb * GiB,
            )
            disks = [DiskPlan(node="root", path=str(files.root_disk), format="qcow2", boot=True)]
            jobs.append(
                create_root_disk(
                    files.root_disk,
                    base=base,
                    root_gb=spec.root_gb,
                    qemu_img=self.settings.qemu_img,
                )
            )
        # Once the image is accepted, the guest's files do not depend on each other: made
        # side by side (qemu-img in its processes, the ISO in a thread), QEMU starts sooner.
        jobs.append(
            asyncio.to_thread(
                configdrive.build_config_drive,
                files.config_drive,
                spec.metadata(),
                [nic.config() for nic in spec.nics],
            )
        )
        if spec.ephemeral_gb:
            jobs.append(self._scratch_disk(files.ephemeral_disk, ephemeral_gb=spec.ephemeral_gb))
            disks.append(
                DiskPlan(node="ephemeral0", path=str(files.ephemeral_disk), format="qcow2")
            )
        if spec.swap_mb:
            jobs.append(self._scratch_disk(files.swap_disk, swap_mb=spec.swap_mb))
            disks.append(DiskPlan(node="swap0", path=str(files.swap_disk), format="qcow2"))
        disks.append(
            DiskPlan(node="config", path=str(files.config_drive), format="raw", read_only=True)
        )
        boot: dict[str, str] = {}

        async def cache(name: str, source: ImageSource) -> None:
            image = await self.images.ensure(source.path, checksum=source.checksum)
            path = image.path
            if name == "kernel":  # entered by PVH when it can be (pvh.py)
                path = await asyncio.to_thread(pvh_kernel, path)
            boot[name] = str(path)

        if spec.kernel is not None:
            jobs.append(cache("kernel", spec.kernel))
        if spec.ramdisk is not None:
            jobs.append(cache("initrd", spec.ramdisk))
        await _together(jobs)
        kernel, initrd = boot.get("kernel"), boot.get("initrd")
        return LaunchPlan(
            id=spec.id,
            name=spec.name,
            vcpus=spec.vcpus,
            ram_mb=spec.ram_mb,
            accel=accel_name,
            machine=self.settings.machine,
            disks=tuple(disks),
            volumes=tuple(
                transfer.disk_of(files.directory, v, sockets=sockets) for v in spec.volumes
            ),
            nics=tuple(NicPlan(tap=nic.tap, mac=nic.mac) for nic in spec.nics),
            kernel=kernel,
            initrd=initrd,
            append=spec.append if kernel else None,
            netns=spec.netns,
            created_at=time.time(),
        )

    async def _scratch_disk(self, path: Path, *, ephemeral_gb: int = 0, swap_mb: int = 0) -> None:
        scratch = self.scratch
        base = await (scratch.ephemeral(ephemeral_gb) if ephemeral_gb else scratch.swap(swap_mb))
        await scratch.overlay(path, base)

    async def destroy(self, instance_id: str) -> None:
        """Kill the guest's QEMU and remove everything it owns; unknown ids are fine."""
        try:
            guest = self._load(instance_id)
        except GuestNotFound:
            return
        incoming = self._incoming.pop(guest.id, None)
        if incoming is not None:
            incoming.close()
        async with guest.lock:
            if guest.power_state() in (PowerState.RUNNING, PowerState.PAUSED):
                with contextlib.suppress(QemuError):
                    await guest.attach()
                if guest.process is not None:
                    await guest.process.terminate(grace=self.settings.kill_grace)
            await guest.detach()
            await self.relays.close_all(guest.plan)
            self._guests.pop(guest.id, None)
            await asyncio.to_thread(shutil.rmtree, guest.files.directory, True)

    # -- live migration (live.py) -----------------------------------------------------------

    async def devices(self, instance_id: str) -> dict[str, str]:
        """The running guest's devices by id, at their PCI addresses (``slot.function``):
        what a destination's QEMU must have the same (a volume hot-plugged here sits
        where QEMU put it, not where a command line would)."""
        guest = self._load(instance_id)
        async with guest.lock:
            return await migration.devices(guest)

    async def receive(
        self, spec: GuestSpec, *, key: migration.MigrationKey, address: str,
        pci: dict[str, str] | None = None,
    ) -> migration.Incoming:  # fmt: skip
        """The guest made here as for a spawn, its QEMU waiting for the migration, and
        what the source sends to opened on ``address``; a guest of an earlier attempt is
        removed first. ``pci``: the source's devices at their addresses, pinned in the
        plan (this QEMU and every later launch of the guest here have them there)."""
        facts = await self.open()
        await self.destroy(spec.id)
        async with self._made(spec, facts.accel) as guest:
            if pci:
                extra = {**guest.plan.extra, PCI: dict(pci)}
                guest.plan = dataclasses.replace(guest.plan, extra=extra)
                guest.save_plan()
            incoming = await migration.receive(guest, key=key, address=address)
        self._incoming[spec.id] = incoming
        return incoming

    async def settle(self, instance_id: str) -> PowerState:
        """The arrival completed: the guest runs here as any other."""
        guest = self._load(instance_id)
        incoming = self._incoming.pop(guest.id, None)
        async with guest.lock:
            if incoming is None:  # settled already (the command sent again), or the
                # agent restarted meanwhile: arrived if QEMU runs the guest, its exports
                # then removed (QEMU had the connections already)
                if await guest.attach():
                    status = (await guest.monitor().execute("query-status"))["status"]
                    if status in ("running", "paused"):
                        exports = tuple(d.node for d in migration.copied(guest.plan.disks))
                        return await migration.arrived(guest, exports)
                raise QemuError(f"guest {instance_id} is not arriving on this host")
            return await migration.settle(guest, incoming)

    async def send(
        self, instance_id: str, *, key: migration.MigrationKey, address: str, nbd_port: int,
        migration_port: int,
    ) -> dict[str, Any]:  # fmt: skip
        """Live-migrate the guest to the destination's QEMU; QEMU's figures."""
        guest = self._load(instance_id)
        async with guest.lock:
            return await migration.send(
                guest, key=key, address=address, nbd_port=nbd_port, migration_port=migration_port
            )

    async def recover(self, instance_id: str, *, was_running: bool) -> None:
        """The destination failed after the switchover: the guest runs here again."""
        guest = self._load(instance_id)
        async with guest.lock:
            await migration.recover(guest, was_running=was_running)

    # -- lifecycle ---------------------------------------------------------------------------

    async def stop(self, instance_id: str, *, timeout: float | None = None) -> None:
        guest = self._load(instance_id)
        async with guest.lock:
            await guest.stop(timeout=timeout)

    async def start(self, instance_id: str) -> None:
        guest = self._load(instance_id)
        async with guest.lock:
            await guest.start()

    async def reboot(self, instance_id: str, *, hard: bool) -> None:
        guest = self._load(instance_id)
        async with guest.lock:
            await guest.reboot(hard=hard)

    async def pause(self, instance_id: str) -> None:
        guest = self._load(instance_id)
        async with guest.lock:
            await guest.pause()

    async def unpause(self, instance_id: str) -> None:
        guest = self._load(instance_id)
        async with guest.lock:
            await guest.unpause()

    async def suspend(self, instance_id: str) -> None:
        guest = self._load(instance_id)
        async with guest.lock:
            await transfer.suspend(guest)

    async def resume(self, instance_id: str) -> None:
        guest = self._load(instance_id)
        async with guest.lock:
            await transfer.resume(guest)

    async def snapshot(self, instance_id: str, *, target: Path | None = None) -> Snapshot:
        """A standalone qcow2 of the root disk; the caller removes the file."""
        guest = self._load(instance_id)
        if target is None:
            target = self.layout.snapshots / f"{guest.id}-{time.time_ns()}.qcow2"
        async with guest.lock:
            await transfer.snapshot(guest, target)
        return Snapshot(path=target, disk_format="qcow2")

    async def freeze_disk(self, instance_id: str) -> Snapshot:
        """The running guest's disk frozen into a layer (``layers.py``), standalone in a
        file the caller removes."""
        guest = self._load(instance_id)
        target = self.layout.snapshots / f"{guest.id}-{time.time_ns()}.qcow2"
        async with guest.lock:
            await layers.freeze(guest, target)
        return Snapshot(path=target, disk_format="qcow2")

    async def export_changes(self, instance_id: str) -> Snapshot:
        """What the stopped guest wrote since its freeze, in a file the caller removes."""
        guest = self._load(instance_id)
        target = self.layout.snapshots / f"{guest.id}-{time.time_ns()}.changes.qcow2"
        async with guest.lock:
            await layers.export_changes(guest, target)
        return Snapshot(path=target, disk_format="qcow2")

    async def join_layers(self, *, base: Path, changes: Path) -> None:
        await join_layers(base, changes, qemu_img=self.settings.qemu_img)

    # -- what a real hypervisor adds ------------------------------------------------------------

    def console_output(self, instance_id: str, *, lines: int | None = None) -> str:
        return self._load(instance_id).console.output(lines=lines)

    async def diagnostics(self, instance_id: str) -> dict[str, Any]:
        guest = self._load(instance_id)
        async with guest.lock:
            return await guest.diagnostics()

    async def attach_block(self, instance_id: str, device: BlockDevice) -> None:
        guest = self._load(instance_id)
        async with guest.lock:
            await transfer.attach_block(guest, device)

    async def detach_block(self, instance_id: str, device_id: str) -> None:
        guest = self._load(instance_id)
        async with guest.lock:
            await transfer.detach_block(guest, device_id)

    def pid(self, instance_id: str) -> int | None:
        """The guest's QEMU process id while it runs (for metrics and tests)."""
        guest = self._load(instance_id)
        if guest.process is not None and guest.process.alive():
            return guest.process.pid
        return running_pid(guest.files.pidfile, guest.id)


async def _together(jobs: list[Coroutine[Any, Any, object]]) -> None:
    """Run ``jobs`` side by side; the first failure is raised as it was, after the others
    were cancelled and waited for (a thread already writing finishes on its own)."""
    try:
        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(job)
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
