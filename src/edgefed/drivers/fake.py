"""``FakeDriver``: a simulated hypervisor with a real (asynchronous) lifecycle.

Every operation takes ``transition_seconds`` of simulated hypervisor time (0 in unit
tests, a fraction of a second in ``edgefed up``), so clients see BUILD, REBOOT and the
other transitions as with a real cloud. Instances live in memory only: the compute
service owns the persistent state and re-adopts instances after a restart. A server
whose ``user_data`` or name asks for it can be made to fail (``FAIL_MARKER``), so tests
can exercise the ERROR path at the seam.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgefed.drivers.base import (
    DriverError,
    HypervisorInfo,
    InstanceSpec,
    PowerListener,
    PowerState,
    Snapshot,
    VolumeDevice,
)

# A server whose name contains this marker fails to spawn: the fake's fault injection.
FAIL_MARKER = "fake-spawn-failure"
# One whose name contains this fails to live-migrate (its guest stays where it was).
LIVE_FAIL_MARKER = "fake-live-migration-failure"
# The fake's layer of changes (``export_changes``): this, then the offset the changed
# bytes start at and the disk's new length (two big-endian u64), then those bytes.
CHANGES_MAGIC = b"edgefed-fake-changes\n"


@dataclass
class FakeInstance:
    spec: InstanceSpec
    power: PowerState
    volumes: dict[str, VolumeDevice] = field(default_factory=dict)
    # The disk as the guest wrote it (``FakeDriver.write``); None: its image, unchanged.
    written: bytes | None = None
    # The disk when ``freeze_disk`` last froze it (a mild relocation).
    frozen: bytes | None = None


class FakeDriver:
    name = "fake"

    def __init__(self, *, transition_seconds: float = 0.0):
        self.transition_seconds = transition_seconds
        self.instances: dict[str, FakeInstance] = {}

    async def _work(self) -> None:
        # Simulated hypervisor latency (0 yields to the loop, so ordering stays async).
        await asyncio.sleep(self.transition_seconds)

    def _get(self, instance_id: str) -> FakeInstance:
        instance = self.instances.get(instance_id)
        if instance is None:
            raise DriverError(f"instance {instance_id} is not known to the fake hypervisor")
        return instance

    async def spawn(self, spec: InstanceSpec) -> None:
        await self._work()
        if FAIL_MARKER in spec.name:
            raise DriverError(f"the fake hypervisor refused to spawn {spec.name} (fault injection)")
        volumes = [v for v in (spec.root_volume, *spec.volumes) if v is not None]
        self.instances[spec.id] = FakeInstance(
            spec=spec,
            power=PowerState.RUNNING if spec.power_on else PowerState.SHUTDOWN,
            volumes={v.volume_id: v for v in volumes},
        )

    async def stop(self, instance_id: str) -> None:
        await self._work()
        self._get(instance_id).power = PowerState.SHUTDOWN

    async def start(self, instance_id: str) -> None:
        await self._work()
        self._get(instance_id).power = PowerState.RUNNING

    async def reboot(self, instance_id: str, *, hard: bool) -> None:
        await self._work()
        self._get(instance_id).power = PowerState.RUNNING

    async def pause(self, instance_id: str) -> None:
        await self._work()
        self._get(instance_id).power = PowerState.PAUSED

    async def unpause(self, instance_id: str) -> None:
        await self._work()
        self._get(instance_id).power = PowerState.RUNNING

    async def suspend(self, instance_id: str) -> None:
        await self._work()
        self._get(instance_id).power = PowerState.SUSPENDED

    async def resume(self, instance_id: str) -> None:
        await self._work()
        self._get(instance_id).power = PowerState.RUNNING

    async def live_migrate(
        self, spec: InstanceSpec, *, source: str, resume: bool = False
    ) -> dict[str, float]:
        await self._work()
        instance = self._get(spec.id)
        if LIVE_FAIL_MARKER in spec.name:
            raise DriverError(f"the fake hypervisor failed to move {spec.name} (fault injection)")
        instance.spec = spec
        return {"downtime_ms": 0.0, "total_ms": self.transition_seconds * 1000}

    async def destroy(self, instance_id: str) -> None:
        await self._work()
        self.instances.pop(instance_id, None)

    async def snapshot(self, instance_id: str) -> Snapshot:
        await self._work()
        instance = self._get(instance_id)
        if instance.written is not None:
            return Snapshot(data=instance.written)
        # The fake disk is the base image, unchanged.
        if instance.spec.image_path is not None and instance.spec.image_path.exists():
            return Snapshot(path=instance.spec.image_path)
        return Snapshot(data=b"")

    def write(self, instance_id: str, data: bytes, *, at: int) -> None:
        """The guest writes ``data`` at offset ``at`` of its disk (a test's doing)."""
        instance = self._get(instance_id)
        disk = bytearray(self._disk(instance))
        disk[at : at + len(data)] = data
        instance.written = bytes(disk)

    def _disk(self, instance: FakeInstance) -> bytes:
        if instance.written is not None:
            return instance.written
        path = instance.spec.image_path
        return path.read_bytes() if path is not None and path.exists() else b""

    async def freeze_disk(self, instance_id: str) -> Snapshot:
        await self._work()
        instance = self._get(instance_id)
        if instance.power != PowerState.RUNNING:
            raise DriverError(f"instance {instance_id} is not running: nothing to freeze")
        instance.frozen = self._disk(instance)
        return Snapshot(data=instance.frozen)

    async def export_changes(self, instance_id: str) -> Snapshot:
        await self._work()
        instance = self._get(instance_id)
        if instance.power == PowerState.RUNNING:
            raise DriverError(f"instance {instance_id} still runs: stop it first")
        if instance.frozen is None:
            raise DriverError(f"instance {instance_id}'s disk was never frozen")
        old, new = instance.frozen, self._disk(instance)
        start = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b),
                     min(len(old), len(new)))  # fmt: skip
        head = CHANGES_MAGIC + struct.pack("!QQ", start, len(new))
        return Snapshot(data=head + new[start:])

    async def join_layers(self, *, base: Path, changes: Path) -> None:
        await self._work()
        data = changes.read_bytes()
        head = len(CHANGES_MAGIC) + 16
        if not data.startswith(CHANGES_MAGIC) or len(data) < head:
            raise DriverError(f"{changes} is not a layer of the fake hypervisor's changes")
        start, length = struct.unpack("!QQ", data[len(CHANGES_MAGIC) : head])
        with open(base, "r+b") as f:
            f.truncate(length)
            f.seek(start)
            f.write(data[head:])

    async def attach_volume(self, instance_id: str, volume: VolumeDevice) -> None:
        await self._work()
        self._get(instance_id).volumes[volume.volume_id] = volume

    async def detach_volume(self, instance_id: str, volume_id: str) -> None:
        await self._work()
        self._get(instance_id).volumes.pop(volume_id, None)

    def power_state(self, instance_id: str) -> PowerState:
        instance = self.instances.get(instance_id)
        return PowerState.NOSTATE if instance is None else instance.power

    async def console_output(self, instance_id: str, *, lines: int | None = None) -> str:
        instance = self._get(instance_id)
        log = [f"fake console of {instance.spec.name}", f"power state {instance.power.name}"]
        return "\n".join(log[-lines:] if lines else log) + "\n"

    async def diagnostics(self, instance_id: str) -> dict[str, object]:
        instance = self._get(instance_id)
        return {
            "state": instance.power.name.lower(),
            "driver": "fake",
            "hypervisor": "fake",
            "num_cpus": instance.spec.vcpus,
            "memory_details": {"maximum": instance.spec.ram_mb, "used": 0},
        }

    def adopt(self, instances: Sequence[tuple[InstanceSpec, PowerState]]) -> None:
        for spec, power in instances:
            self.instances[spec.id] = FakeInstance(spec=spec, power=power)

    def hypervisor(self, host: str) -> HypervisorInfo:
        return HypervisorInfo(
            hypervisor_type="fake",
            hypervisor_version=1000,
            host_ip="127.0.0.1",
            cpu_model="fake",
            accel="none",
        )

    def watch_power(self, listener: PowerListener) -> None:
        # A simulated guest never changes by itself.
        return None

    async def close(self) -> None:
        self.instances.clear()
