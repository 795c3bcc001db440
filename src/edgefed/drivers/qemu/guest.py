"""One guest's lifecycle: its QEMU process and its monitor connection.

A ``Guest`` is rebuilt from its directory alone (``guest.json`` and the locked
pidfile), so an agent that restarts adopts running guests by attaching again: check
the pidfile's lock and the uuid in /proc/<pid>/cmdline, reconnect QMP, read the run
state. While attached, QMP events keep the state current (STOP, RESUME, SHUTDOWN,
GUEST_PANICKED) and a watcher notices when QEMU goes away by itself.

Operations, each under the guest's lock and each wait bounded by ``QemuSettings``:

- stop: ACPI power button, then ``quit`` (then signals) after ``shutdown_timeout``;
  a paused guest cannot see the button, so it stops hard at once;
- start: a new QEMU from the same plan (the disks keep what the guest wrote);
- reboot: soft is the ACPI power-off and a new QEMU; hard (and a soft one the guest
  ignores, as Nova falls back) stops QEMU hard and starts a new one;
- pause/unpause: QMP ``stop``/``cont``; suspend, resume, snapshot and hot-plug are in
  ``transfer.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from edgefed.drivers.base import PowerState
from edgefed.drivers.qemu import diagnostics
from edgefed.drivers.qemu.cmdline import LaunchPlan, qemu_argv
from edgefed.drivers.qemu.console import ConsoleLog
from edgefed.drivers.qemu.errors import InvalidGuestState, LaunchFailed, QmpError
from edgefed.drivers.qemu.layout import GuestFiles
from edgefed.drivers.qemu.process import Process, launch, running_pid
from edgefed.drivers.qemu.qmp import Event, QmpClient
from edgefed.drivers.qemu.relay import NbdRelays
from edgefed.drivers.qemu.settings import PowerListener, QemuSettings

# QMP run states (query-status) as Nova power states; anything else is PAUSED
RUN_STATES = {
    "running": PowerState.RUNNING,
    "shutdown": PowerState.SHUTDOWN,
    "guest-panicked": PowerState.CRASHED,
    "internal-error": PowerState.CRASHED,
}
STATE_NAMES = {
    PowerState.NOSTATE: "pending",
    PowerState.RUNNING: "running",
    PowerState.PAUSED: "paused",
    PowerState.SHUTDOWN: "shutdown",
    PowerState.CRASHED: "crashed",
    PowerState.SUSPENDED: "suspended",
}


class Guest:
    def __init__(
        self,
        *,
        files: GuestFiles,
        plan: LaunchPlan,
        settings: QemuSettings,
        on_change: PowerListener | None = None,
        relays: NbdRelays | None = None,
    ) -> None:
        self.files = files
        self.plan = plan
        self.settings = settings
        self.on_change = on_change
        # the agent's relays to NBD exports, for a guest in a namespace (relay.py)
        self.relays = relays if relays is not None else NbdRelays()
        self.lock = asyncio.Lock()
        self.console = ConsoleLog(files.console_log, cap_bytes=settings.console_cap_bytes)
        self.process: Process | None = None
        self.qmp: QmpClient | None = None
        self._run_state = "shutdown"
        self._clean_exit = True
        self._crashed = False
        self._watcher: asyncio.Task[None] | None = None

    @property
    def id(self) -> str:
        return self.plan.id

    # -- state ---------------------------------------------------------------------

    def power_state(self) -> PowerState:
        if self.process is not None and self.process.alive():
            return RUN_STATES.get(self._run_state, PowerState.PAUSED)
        if self.process is None and running_pid(self.files.pidfile, self.id) is not None:
            return PowerState.RUNNING  # running, not attached yet (adopt() attaches)
        if self.files.suspend_state.exists():
            return PowerState.SUSPENDED
        return PowerState.CRASHED if self._crashed else PowerState.SHUTDOWN

    def _require(self, operation: str, *allowed: PowerState) -> PowerState:
        state = self.power_state()
        if state not in allowed:
            raise InvalidGuestState(self.id, operation, STATE_NAMES[state])
        return state

    def save_plan(self) -> None:
        partial = self.files.record.with_name("guest.json.partial")
        partial.write_text(self.plan.to_json())
        partial.replace(self.files.record)

    # -- attaching -------------------------------------------------------------------

    async def attach(self) -> bool:
        """Attach to a running QEMU (after a launch, or to adopt it); whether one runs."""
        if self.process is not None and self.process.alive() and self.qmp and self.qmp.is_open:
            return True
        await self.detach()
        pid = running_pid(self.files.pidfile, self.id)
        process = Process.attach(pid, self.id) if pid is not None else None
        if process is None:
            return False
        client = await QmpClient.connect(self.files.qmp_socket, timeout=self.settings.qmp_timeout)
        client.add_listener(self._on_event)
        self.process, self.qmp = process, client
        self._clean_exit, self._crashed = False, False
        self._run_state = (await client.execute("query-status"))["status"]
        self._watcher = asyncio.create_task(self._watch(client, process), name=f"qemu-{self.id}")
        return True

    def _on_event(self, event: Event) -> None:
        name = event.get("event")
        if name == "STOP":
            self._run_state = "paused"
        elif name == "RESUME":
            self._run_state = "running"
        elif name == "SHUTDOWN":
            self._run_state = "shutdown"
            self._clean_exit = True
        elif name == "GUEST_PANICKED":
            self._run_state = "guest-panicked"
        else:
            return
        if not self.lock.locked() and self.on_change is not None:
            self.on_change(self.id, self.power_state())

    async def _watch(self, client: QmpClient, process: Process) -> None:
        """QEMU went away: by itself (powered off, crashed) unless an operation did it."""
        await client.closed
        await process.wait(self.settings.kill_grace)
        self._crashed = not self._clean_exit and not process.alive()
        if not self.lock.locked() and self.on_change is not None:
            self.on_change(self.id, self.power_state())

    async def detach(self) -> None:
        """Forget the process and close QMP; QEMU itself is left alone."""
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        if self.qmp is not None:
            await self.qmp.close()
            self.qmp = None
        if self.process is not None:
            self.process.close()
            self.process = None

    def monitor(self) -> QmpClient:
        if self.qmp is None or not self.qmp.is_open:
            raise InvalidGuestState(self.id, "talk to", "not attached to its QEMU")
        return self.qmp

    async def launch(self, *, incoming: bool = False) -> None:
        """A new QEMU from the plan, attached; ``incoming``: it waits for a migration."""
        for stale in (self.files.qmp_socket, self.files.serial_socket, self.files.pidfile):
            stale.unlink(missing_ok=True)
        await self.relays.open_all(self.plan)  # QEMU connects to its NBD disks at once
        argv = qemu_argv(
            self.plan,
            self.files,
            qemu=self.settings.qemu,
            incoming=incoming,
            sandbox=self.settings.sandbox,
        )
        await launch(argv, log=self.files.qemu_log, timeout=self.settings.launch_timeout)
        if not await self.attach():
            raise LaunchFailed(f"QEMU started guest {self.id} but is no longer running")

    # -- power -------------------------------------------------------------------------

    async def _powerdown(self, timeout: float) -> bool:
        """The ACPI power button; whether the guest powered off within ``timeout``."""
        assert self.process is not None
        try:
            await self.monitor().execute("system_powerdown")
        except QmpError:
            return not self.process.alive()
        return await self.process.wait(timeout)

    async def hard_stop(self) -> None:
        """``quit`` (QEMU flushes and exits), then SIGTERM and SIGKILL if need be."""
        process = self.process
        if process is not None and process.alive():
            with contextlib.suppress(QmpError, InvalidGuestState):
                await self.monitor().execute("quit", timeout=self.settings.kill_grace)
            if not await process.wait(self.settings.kill_grace):
                await process.terminate(grace=self.settings.kill_grace)
        await self.detach()
        self._crashed = False

    async def stop(self, *, timeout: float | None = None) -> None:
        state = self.power_state()
        if state == PowerState.SUSPENDED:
            self.files.suspend_state.unlink(missing_ok=True)  # as Nova drops a managed save
            return
        if state in (PowerState.SHUTDOWN, PowerState.CRASHED):
            await self.detach()
            self._crashed = False
            return
        await self.attach()
        wait = self.settings.shutdown_timeout if timeout is None else timeout
        if state == PowerState.RUNNING and wait > 0 and await self._powerdown(wait):
            await self.detach()
            return
        await self.hard_stop()

    async def start(self) -> None:
        state = self._require(
            "start", PowerState.SHUTDOWN, PowerState.CRASHED, PowerState.RUNNING, PowerState.PAUSED
        )
        if state in (PowerState.RUNNING, PowerState.PAUSED):
            await self.attach()
            return
        await self.launch()

    async def reboot(self, *, hard: bool) -> None:
        state = self.power_state()
        if state == PowerState.SUSPENDED:
            if not hard:
                raise InvalidGuestState(self.id, "soft reboot", "suspended")
            self.files.suspend_state.unlink(missing_ok=True)
        elif state in (PowerState.RUNNING, PowerState.PAUSED):
            await self.attach()
            soft = not hard and state == PowerState.RUNNING
            if soft and await self._powerdown(self.settings.shutdown_timeout):
                await self.detach()
            else:
                # as Nova's hard reboot: a new QEMU, which also cures a wedged one (and
                # SeaBIOS reads the disk ~100 times slower after a system_reset under TCG)
                await self.hard_stop()
        else:
            await self.detach()
        await self.launch()

    async def pause(self) -> None:
        if self._require("pause", PowerState.RUNNING, PowerState.PAUSED) == PowerState.PAUSED:
            return
        await self.attach()
        await self.monitor().execute("stop")
        self._run_state = "paused"

    async def unpause(self) -> None:
        if self._require("unpause", PowerState.PAUSED, PowerState.RUNNING) == PowerState.RUNNING:
            return
        await self.attach()
        await self.monitor().execute("cont")
        self._run_state = "running"

    async def diagnostics(self) -> dict[str, Any]:
        state = self.power_state()
        if state not in (PowerState.RUNNING, PowerState.PAUSED):
            raise InvalidGuestState(self.id, "read the diagnostics of", STATE_NAMES[state])
        await self.attach()
        assert self.process is not None
        return await diagnostics.collect(
            qmp=self.monitor(),
            pid=self.process.pid,
            state=STATE_NAMES[self.power_state()],
            accel=self.plan.accel,
            ram_mb=self.plan.ram_mb,
            nics=self.plan.nics,
            netns=self.plan.netns,
        )
