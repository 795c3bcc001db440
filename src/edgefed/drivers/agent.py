"""``AgentDriver``: the compute driver of a site whose guests run on host agents.

Each operation becomes a command for the agent of the instance's host
(``api.hostcommands``), and returns when the agent answered: a spawn once QEMU runs
there, a stop once it has stopped. An answer with an error is a ``DriverError`` with
the agent's words; no answer before the deadline, or a host whose agent went down, is
a ``HostUnavailable`` naming the host and the wait, so the server gets a fault that
says why instead of staying in a task state.

The driver knows which host runs an instance from the spawn, from ``adopt`` after a
restart, and from the servers' records otherwise. What agents report of their guests
(power changes, the guests found after an agent restart) is kept for
``power_state`` and passed to the compute service's listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgefed.api.hostcommands import GuestReport, HostCommandQueue
from edgefed.drivers.base import (
    DriverError,
    HostUnavailable,
    HypervisorInfo,
    InstanceSpec,
    PowerListener,
    PowerState,
    Snapshot,
    VolumeDevice,
)
from edgefed.drivers.wire import instance_to_json, volume_to_json
from edgefed.store.compute import ServerRepository
from edgefed.store.inventory import InventoryRepository

log = logging.getLogger("edgefed.drivers.agent")


@dataclass(frozen=True, slots=True)
class CommandTimeouts:
    """Seconds an agent has to answer, by kind of work."""

    spawn: float = 300.0  # copying and converting an image can take minutes
    power: float = 120.0  # an ACPI power-off waits up to QEMU's shutdown timeout
    snapshot: float = 1800.0
    # Console output, diagnostics: Nova waits rpc_response_timeout (60 s) for the same.
    query: float = 60.0
    # A live migration's send and settle: the disks' copy, then the RAM's (each of the
    # agent's waits is bounded by its QEMU settings' migrate_timeout).
    migrate: float = 900.0


class AgentDriver:
    name = "qemu"

    def __init__(
        self,
        *,
        queue: HostCommandQueue,
        servers: ServerRepository,
        inventory: InventoryRepository,
        timeouts: CommandTimeouts | None = None,
    ) -> None:
        self.queue = queue
        self.servers = servers
        self.inventory = inventory
        self.timeouts = timeouts or CommandTimeouts()
        self._hosts: dict[str, str] = {}
        self._power: dict[str, PowerState] = {}
        self._facts: dict[str, dict[str, Any]] = {}
        self._listener: PowerListener | None = None
        # Guests a host still runs for servers now on another host (an evacuation while
        # it was down), being destroyed there: once each.
        self._strays: dict[tuple[str, str], asyncio.Task[None]] = {}
        # Guests arriving on a host by live migration: that host reports them before
        # they are its own, and they are not strays.
        self._arriving: dict[str, str] = {}
        queue.listen(self._on_report)

    # -- routing ---------------------------------------------------------------------------

    async def _host(self, instance_id: str) -> str | None:
        host = self._hosts.get(instance_id)
        if host is None:
            server = await self.servers.get(instance_id, include_deleted=True)
            host = server.host if server is not None else None
            if host is not None:
                self._hosts[instance_id] = host
        return host

    async def _refusal(self, host: str) -> str | None:
        """Why ``host`` cannot take a command now (unknown, its agent down), or None."""
        found = {h.hostname: h for h in await self.inventory.list_hosts()}.get(host)
        if found is None:
            return f"host {host} is not in the site's inventory"
        if found.credential_hash is None:
            return f"host {host} has no enrolled agent"
        if found.availability == "down":
            return f"host {host} is down: its agent stopped sending heartbeats"
        return None

    async def _call(
        self,
        instance_id: str,
        kind: str,
        *,
        timeout: float,
        host: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        host = host or await self._host(instance_id)
        if host is None:
            raise DriverError(f"instance {instance_id} has no host")
        refusal = await self._refusal(host)
        if refusal is not None:
            raise HostUnavailable(refusal)
        record = await self.queue.submit(
            host=host, kind=kind, server_id=instance_id, payload=payload, timeout=timeout
        )
        if record.state == "done":
            result = record.result or {}
            if "power_state" in result:
                self._power[instance_id] = PowerState(int(result["power_state"]))
            return result
        error = record.error or "the command failed"
        if (record.result or {}).get("unavailable"):
            raise HostUnavailable(error)  # failed by the site: no agent answered
        raise DriverError(error)

    # -- operations --------------------------------------------------------------------------

    async def spawn(self, spec: InstanceSpec) -> None:
        self._hosts[spec.id] = spec.host
        await self._call(
            spec.id,
            "spawn",
            host=spec.host,
            timeout=self.timeouts.spawn,
            payload={"instance": instance_to_json(spec)},
        )
        self._power[spec.id] = PowerState.RUNNING if spec.power_on else PowerState.SHUTDOWN

    async def _power_op(self, instance_id: str, kind: str, **payload: Any) -> None:
        await self._call(instance_id, kind, timeout=self.timeouts.power, payload=payload)

    async def stop(self, instance_id: str) -> None:
        await self._power_op(instance_id, "stop")
        self._power[instance_id] = PowerState.SHUTDOWN

    async def start(self, instance_id: str) -> None:
        await self._power_op(instance_id, "start")
        self._power[instance_id] = PowerState.RUNNING

    async def reboot(self, instance_id: str, *, hard: bool) -> None:
        await self._power_op(instance_id, "reboot", hard=hard)
        self._power[instance_id] = PowerState.RUNNING

    async def pause(self, instance_id: str) -> None:
        await self._power_op(instance_id, "pause")
        self._power[instance_id] = PowerState.PAUSED

    async def unpause(self, instance_id: str) -> None:
        await self._power_op(instance_id, "unpause")
        self._power[instance_id] = PowerState.RUNNING

    async def suspend(self, instance_id: str) -> None:
        await self._power_op(instance_id, "suspend")
        self._power[instance_id] = PowerState.SUSPENDED

    async def resume(self, instance_id: str) -> None:
        await self._power_op(instance_id, "resume")
        self._power[instance_id] = PowerState.RUNNING

    async def destroy(self, instance_id: str) -> None:
        host = await self._host(instance_id)
        if host is None:
            return  # never placed: nothing runs anywhere
        await self._call(instance_id, "destroy", host=host, timeout=self.timeouts.power)
        self._hosts.pop(instance_id, None)
        self._power.pop(instance_id, None)

    async def snapshot(self, instance_id: str) -> Snapshot:
        """The agent writes a standalone qcow2 the site reads (an agent on the site's
        machine: the path is shared)."""
        return await self._file(instance_id, "snapshot")

    async def freeze_disk(self, instance_id: str) -> Snapshot:
        return await self._file(instance_id, "freeze_disk")

    async def export_changes(self, instance_id: str) -> Snapshot:
        return await self._file(instance_id, "export_changes")

    async def _file(self, instance_id: str, kind: str) -> Snapshot:
        result = await self._call(instance_id, kind, timeout=self.timeouts.snapshot)
        path = result.get("path")
        if not isinstance(path, str):
            raise DriverError(f"the agent's {kind} names no file")
        return Snapshot(
            path=Path(path),
            disk_format=str(result.get("disk_format") or "qcow2"),
            temporary=True,
        )

    async def join_layers(self, *, base: Path, changes: Path) -> None:
        """Here, not on a host: the files are the site's (a relocation's, received), and
        no host is chosen yet. qemu-img, as the volume service runs it."""
        from edgefed.drivers.qemu.disks import join_layers  # the site loads QEMU's for this

        await join_layers(base, changes)

    async def _address(self, host: str) -> str:
        """Where ``host`` listens for a migration: the management address the inventory
        records, else the one its agent reports, else loopback (one machine)."""
        found = {h.hostname: h for h in await self.inventory.list_hosts()}.get(host)
        if found is not None and found.mgmt_ip:
            return str(found.mgmt_ip)
        return str(self._facts.get(host, {}).get("host_ip") or "127.0.0.1")

    async def live_migrate(
        self, spec: InstanceSpec, *, source: str, resume: bool = False
    ) -> dict[str, float]:
        """Three steps, each a command (drivers/qemu/live.py), after the source named its
        devices' PCI addresses: the destination receives (the guest made there with its
        devices at the same addresses and the same volumes, QEMU waiting, its NBD
        exports and listener on its address), the source sends (disks, then RAM; the
        guest paused at the switchover), the destination settles (the guest runs there);
        then the source's guest is destroyed. The TLS key is made here for this
        migration only and given to both agents in their commands, over their own
        authenticated channels.

        ``resume`` (the site restarted during the move): the settle is asked for again
        (a command still open is awaited, and an arrival settled already says so); the
        guest stays where it arrived, or goes on at the source if it did not."""
        destination = spec.host
        key = {"identity": f"edgefed-{secrets.token_hex(4)}", "key": secrets.token_hex(32)}
        address = await self._address(destination)
        self._arriving[spec.id] = destination
        # (Resumed after a restart: a paused server's guest stays paused if undone.)
        figures: dict[str, Any] = {"was_running": self._power.get(spec.id) != PowerState.PAUSED}
        try:
            if not resume:
                # The destination's QEMU has the source's devices where they are there
                # (a volume hot-plugged sits where QEMU put it).
                devices = await self._call(
                    spec.id, "live_devices", host=source, timeout=self.timeouts.query
                )
                try:
                    ports = await self._call(
                        spec.id, "live_receive", host=destination, timeout=self.timeouts.spawn,
                        payload={"instance": instance_to_json(spec), "key": key,
                                 "address": address, "pci": devices.get("pci") or {}},
                    )  # fmt: skip
                    figures = await self._call(
                        spec.id, "live_send", host=source, timeout=self.timeouts.migrate,
                        payload={"key": key, "address": address, **ports},
                    )  # fmt: skip
                except DriverError:
                    await self._remove_arrival(spec.id, destination)
                    raise
            try:
                settled = await self._call(
                    spec.id, "live_settle", host=destination, timeout=self.timeouts.migrate
                )
            except DriverError:
                # The source's guest, paused since the switchover, runs again there.
                await self._remove_arrival(spec.id, destination)
                await self._call(
                    spec.id, "live_recover", host=source, timeout=self.timeouts.power,
                    payload={"was_running": figures.get("was_running")},
                )  # fmt: skip
                raise
        finally:
            self._arriving.pop(spec.id, None)
        self._hosts[spec.id] = destination
        self._power[spec.id] = PowerState(int(settled.get("power_state", PowerState.RUNNING)))
        try:
            await self.queue.submit(host=source, kind="destroy", server_id=spec.id,
                                    payload=None, timeout=self.timeouts.power)  # fmt: skip
        except Exception as exc:  # paused there, never resumed: destroyed at its next report
            log.warning("destroying the guest %s left on %s: %r", spec.id, source, exc)
        return {k: float(v) for k, v in figures.items() if isinstance(v, int | float)}

    async def _migrating(self, instance_id: str) -> bool:
        server = await self.servers.get(instance_id)
        return server is not None and server.task_state == "migrating"

    async def _remove_arrival(self, instance_id: str, host: str) -> None:
        """What the destination made of a guest that does not arrive, removed."""
        with contextlib.suppress(DriverError):
            await self._call(instance_id, "destroy", host=host, timeout=self.timeouts.power)

    async def attach_volume(self, instance_id: str, volume: VolumeDevice) -> None:
        await self._call(
            instance_id,
            "attach_volume",
            timeout=self.timeouts.power,
            payload={"volume": volume_to_json(volume)},
        )

    async def detach_volume(self, instance_id: str, volume_id: str) -> None:
        # The guest must release the disk first (an ACPI unplug): as long as a power-off.
        await self._call(
            instance_id,
            "detach_volume",
            timeout=self.timeouts.power,
            payload={"volume_id": volume_id},
        )

    def power_state(self, instance_id: str) -> PowerState:
        return self._power.get(instance_id, PowerState.NOSTATE)

    async def console_output(self, instance_id: str, *, lines: int | None = None) -> str:
        result = await self._call(
            instance_id, "console", timeout=self.timeouts.query, payload={"lines": lines}
        )
        return str(result.get("output") or "")

    async def diagnostics(self, instance_id: str) -> dict[str, object]:
        result = await self._call(instance_id, "diagnostics", timeout=self.timeouts.query)
        diagnostics = result.get("diagnostics")
        return dict(diagnostics) if isinstance(diagnostics, dict) else {}

    def adopt(self, instances: Sequence[tuple[InstanceSpec, PowerState]]) -> None:
        for spec, power in instances:
            self._hosts[spec.id] = spec.host
            self._power[spec.id] = power

    def hypervisor(self, host: str) -> HypervisorInfo:
        facts = self._facts.get(host, {})
        return HypervisorInfo(
            hypervisor_type=str(facts.get("hypervisor_type") or "QEMU"),
            hypervisor_version=int(facts.get("hypervisor_version") or 0),
            host_ip=str(facts.get("host_ip") or "127.0.0.1"),
            cpu_model=str(facts.get("cpu_model") or "unknown"),
            accel=str(facts.get("accel") or "none"),
        )

    def watch_power(self, listener: PowerListener) -> None:
        self._listener = listener

    async def close(self) -> None:
        self._hosts.clear()
        self._power.clear()

    # -- what agents report ------------------------------------------------------------------

    def _destroy_stray(self, host: str, guest_id: str) -> None:
        key = (host, guest_id)
        if key in self._strays:
            return

        async def destroy() -> None:
            try:
                await self.queue.submit(host=host, kind="destroy", server_id=guest_id,
                                        payload=None, timeout=self.timeouts.power)  # fmt: skip
                log.info("destroyed guest %s on %s: its server runs elsewhere", guest_id, host)
            except Exception as exc:  # asked again at its next report
                log.warning("destroying stray guest %s on %s: %r", guest_id, host, exc)
            finally:
                self._strays.pop(key, None)

        self._strays[key] = asyncio.get_running_loop().create_task(destroy())

    async def _on_report(self, report: GuestReport) -> None:
        if report.facts:
            self._facts[report.host] = dict(report.facts)
        changes: dict[str, PowerState] = {}
        for guest_id, power in report.guests.items():
            host = await self._host(guest_id)
            if self._arriving.get(guest_id) == report.host:
                continue  # arriving there by live migration: not its own yet
            if host != report.host:
                # Not a server of that host: a host speaks for its own guests only. One
                # it still runs for a server now elsewhere (evacuated while the host was
                # down) must not run twice: that host destroys it.
                log.warning("host %s reported guest %s of %s", report.host, guest_id, host)
                # (One arriving by a live migration the site is taking up after a
                # restart is not a stray: the move settles it.)
                if host is not None and power == PowerState.RUNNING:
                    if not await self._migrating(guest_id):
                        self._destroy_stray(report.host, guest_id)
                continue
            changes[guest_id] = PowerState(power)
        if report.full:
            for guest_id, host in list(self._hosts.items()):
                if host == report.host and guest_id not in report.guests:
                    changes[guest_id] = PowerState.NOSTATE
        for guest_id, power in changes.items():
            self._power[guest_id] = power
            if self._listener is not None:
                await self._listener(guest_id, power)
