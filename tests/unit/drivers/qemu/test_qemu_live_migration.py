"""The QEMU driver's live migration (``drivers/qemu/live.py``) when a destination fails,
on a real TCG guest between two hypervisors on loopback.

The guest prints a counter forever (its boot number first). A destination removed
before the move: the send fails and the guest counts on at the source. A destination
removed after the switchover (the source paused, its disks let go): ``recover`` runs
the source's guest again, same boot. Then a move that completes, settled twice (a
command sent again), the source's guest destroyed: it counts on at the destination.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from qemu_support import needs_qemu

from edgefed.drivers.base import PowerState
from edgefed.drivers.qemu import GuestSpec, ImageSource, QemuError, QemuHypervisor, QemuSettings
from edgefed.drivers.qemu.live import MigrationKey
from edgefed.guest_image import GuestImage
from edgefed.testkit.wait import eventually

pytestmark = needs_qemu

SETTINGS = QemuSettings(accel="tcg", shutdown_timeout=5)
USER_DATA = (
    b"#!/bin/sh\n"
    b"n=$(cat /boot/boots 2>/dev/null || echo 0); n=$((n+1)); echo $n > /boot/boots; sync\n"
    b'i=0; while true; do i=$((i+1)); echo "TICK-$n-$i"; sleep 0.2; done\n'
)
TICK = re.compile(r"TICK-(\d+)-(\d+)")


def last_tick(hv: QemuHypervisor, guest_id: str) -> tuple[int, int]:
    found = TICK.findall(hv.console_output(guest_id))
    return (int(found[-1][0]), int(found[-1][1])) if found else (0, 0)


async def counts_past(hv: QemuHypervisor, guest_id: str, after: int) -> tuple[int, int]:
    def past() -> Awaitable[bool]:
        return asyncio.sleep(0, last_tick(hv, guest_id)[1] > after)

    await eventually(past, within=90, every=0.1, what=f"a counter past {after}")
    return last_tick(hv, guest_id)


async def test_a_failed_destination_leaves_the_guest_running_at_the_source(
    tmp_path: Path, guest_image: GuestImage
) -> None:
    one = QemuHypervisor(state_dir=tmp_path / "one", settings=SETTINGS)
    two = QemuHypervisor(state_dir=tmp_path / "two", settings=SETTINGS)
    spec = GuestSpec(id=str(uuid.uuid4()), name="live", vcpus=1, ram_mb=128, root_gb=1,
                     image=ImageSource(guest_image.disk, disk_format="qcow2"),
                     user_data=USER_DATA)  # fmt: skip

    def key() -> MigrationKey:
        return MigrationKey(identity="edgefed-test", key=secrets.token_hex(32))

    async def move(*, then: Callable[[], Awaitable[None]] | None = None) -> None:
        the_key = key()
        incoming = await two.receive(spec, key=the_key, address="127.0.0.1")
        if then is not None:
            await then()
        await one.send(spec.id, key=the_key, address="127.0.0.1", nbd_port=incoming.nbd_port,
                       migration_port=incoming.migration_port)  # fmt: skip

    try:
        await one.open()
        await two.open()
        await one.spawn(spec)
        boot, tick = await counts_past(one, spec.id, 3)

        # 1. The destination gone before the send: refused, the guest runs on here.
        async def destination_dies() -> None:
            await two.destroy(spec.id)

        with pytest.raises(QemuError, match="cannot reach the destination"):
            await move(then=destination_dies)
        assert one.power_state(spec.id) == PowerState.RUNNING
        boot2, tick = await counts_past(one, spec.id, tick + 2)
        assert boot2 == boot and two.guest_ids() == []

        # 2. The destination gone after the switchover: the source's guest, paused with
        # its disks let go, runs again.
        await move()
        assert one.power_state(spec.id) == PowerState.PAUSED
        await two.destroy(spec.id)
        await one.recover(spec.id, was_running=True)
        assert one.power_state(spec.id) == PowerState.RUNNING
        boot2, tick = await counts_past(one, spec.id, tick + 2)
        assert boot2 == boot

        # 3. A move that completes, settled twice; the source's guest destroyed.
        await move()
        assert await two.settle(spec.id) == PowerState.RUNNING
        assert await two.settle(spec.id) == PowerState.RUNNING  # the command sent again
        await one.destroy(spec.id)
        boot2, _ = await counts_past(two, spec.id, 0)
        assert boot2 == boot and one.guest_ids() == []
    finally:
        for hv in (one, two):
            for guest_id in hv.guest_ids():
                await hv.destroy(guest_id)
            await hv.close()
