"""``python -m bench live_migration``: a running TCG guest live-migrated between two
hypervisors on loopback (issue #16), against a save and restore of the same guest.

Two ``QemuHypervisor`` over their own state directories stand for two hosts' agents
(the site's command channel is not measured: ``tests/unit/agent/
test_live_migration_qemu.py`` covers it). The guest (the tiny image, 1 vCPU,
``RAM_MB`` MiB, a 1 GiB root overlay) runs a user-data loop that prints a counter
every ``TICK_S`` and writes it to its root disk, so the disk changes while it moves.

1. **The move**: ``receive`` on the second (disks made, QEMU ``-incoming defer``, the
   NBD exports and the listener), ``send`` from the first (the root overlay mirrored
   over NBD, then the RAM, both over TLS-PSK), ``settle``, the first's guest
   destroyed. The figures: QEMU's ``downtime`` (``query-migrate``: how long the guest
   did not run), the disks' mirror time and the whole move (receive → settled).
2. **The anchor**, in the same run on the second hypervisor: ``suspend`` and ``resume``
   of the same guest (QEMU's own migration of the RAM to a file and back, the machine
   stopped throughout: the least a stop-the-world move of the RAM costs here).

The ratio: the move's total ÷ the anchor's (goal ≤ ``TOTAL_GOAL``), and the downtime
against ``DOWNTIME_GOAL_MS``. The guest's counter is read before and after from the
console of each host: it must keep counting, with the same boot number.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

from bench.qemu_boot import qemu_scratch
from edgefed.drivers.qemu import GuestSpec, ImageSource, QemuHypervisor, QemuSettings
from edgefed.drivers.qemu.live import DOWNTIME_LIMIT_MS, MigrationKey
from edgefed.guest_image import GuestImage

RAM_MB = 128
TICK_S = 0.2
BOOT_DEADLINE_S = 180.0
TOTAL_GOAL = 3.0
DOWNTIME_GOAL_MS = 1000.0
# Each boot counts itself on the root disk (its FAT boot partition, which persists);
# then a counter printed every TICK_S and written to the same disk.
USER_DATA = (
    "#!/bin/sh\n"
    "n=$(cat /boot/boots 2>/dev/null || echo 0); n=$((n+1)); echo $n > /boot/boots; sync\n"
    "i=0\n"
    'while true; do i=$((i+1)); echo "TICK-$n-$i"; echo $i > /boot/tick; '
    f"sleep {TICK_S}; done\n"
)
TICK = re.compile(r"TICK-(\d+)-(\d+)")


def last_tick(text: str) -> tuple[int, int] | None:
    found = TICK.findall(text)
    return (int(found[-1][0]), int(found[-1][1])) if found else None


async def ticking(
    hv: QemuHypervisor, guest_id: str, *, after: int, deadline: float
) -> tuple[int, int]:
    """The guest's (boot, counter) once its console shows a counter past ``after``."""
    give_up = time.monotonic() + deadline
    while time.monotonic() < give_up:
        tick = last_tick(hv.console_output(guest_id))
        if tick is not None and tick[1] > after:
            return tick
        await asyncio.sleep(0.05)
    last = hv.console_output(guest_id, lines=3).strip().replace("\n", " | ")
    raise TimeoutError(
        f"guest {guest_id} ({hv.power_state(guest_id).name}) printed no counter past {after}"
        f" within {deadline:.0f} s; its console ends: {last}"
    )


def spec_for(image: GuestImage) -> GuestSpec:
    return GuestSpec(
        id=str(uuid.uuid4()),
        name="live-bench",
        vcpus=1,
        ram_mb=RAM_MB,
        root_gb=1,
        image=ImageSource(image.disk, disk_format="qcow2"),
        user_data=USER_DATA.encode(),
    )


async def migrate(
    source: QemuHypervisor, destination: QemuHypervisor, spec: GuestSpec
) -> dict[str, Any]:
    key = MigrationKey(identity=f"migration-{spec.id[:8]}", key=secrets.token_hex(32))
    started = time.monotonic()
    incoming = await destination.receive(spec, key=key, address="127.0.0.1")
    received = time.monotonic()
    figures = await source.send(
        spec.id, key=key, address="127.0.0.1", nbd_port=incoming.nbd_port,
        migration_port=incoming.migration_port,
    )  # fmt: skip
    await destination.settle(spec.id)
    settled = time.monotonic()
    await source.destroy(spec.id)
    return {
        **figures,
        "receive_s": received - started,
        "total_s": settled - started,
    }


async def measure(image: GuestImage, scratch: Path) -> dict[str, Any]:
    settings = QemuSettings(accel="tcg", shutdown_timeout=5)
    one = QemuHypervisor(state_dir=scratch / "host-1", settings=settings)
    two = QemuHypervisor(state_dir=scratch / "host-2", settings=settings)
    spec = spec_for(image)
    try:
        await one.open()
        await two.open()
        # The destination's image cache is filled as a spawn there would (not timed).
        await two.images.ensure(image.disk, checksum=None, declared_format="qcow2",
                                root_disk_bytes=1 << 30)  # fmt: skip
        await one.spawn(spec)
        before = await ticking(one, spec.id, after=5, deadline=BOOT_DEADLINE_S)
        move = await migrate(one, two, spec)
        after = await ticking(two, spec.id, after=before[1], deadline=30)
        assert one.guest_ids() == [], "the source still has the guest"
        assert after[0] == before[0], f"the guest booted again: {before} → {after}"
        started = time.monotonic()
        await two.suspend(spec.id)
        await two.resume(spec.id)
        anchor_s = time.monotonic() - started
        resumed = await ticking(two, spec.id, after=after[1], deadline=30)
        assert resumed[0] == before[0]
    finally:
        for hv in (one, two):
            for guest_id in hv.guest_ids():
                await hv.destroy(guest_id)
            await hv.close()
    return {
        "accel": "tcg",
        "ram_mb": RAM_MB,
        "downtime_ms": move["downtime_ms"],
        "downtime_limit_ms": DOWNTIME_LIMIT_MS,
        "disks_s": round(move["disks_ms"] / 1000, 3),
        "ram_bytes": move["ram_bytes"],
        "receive_s": round(move["receive_s"], 3),
        "total_s": round(move["total_s"], 3),
        "anchor_save_restore_s": round(anchor_s, 3),
        "ratio": round(move["total_s"] / anchor_s, 2),
        "counter": {"before": before, "after": after},
    }


def run(settings: dict[str, Any]) -> dict[str, Any]:
    with qemu_scratch("edgefed-live-") as (image, scratch):
        results = asyncio.run(measure(image, scratch))
    results["goal"] = {"ratio_at_most": TOTAL_GOAL, "downtime_ms_at_most": DOWNTIME_GOAL_MS}
    results["verdict"] = (
        "PASS"
        if results["ratio"] <= TOTAL_GOAL and results["downtime_ms"] <= DOWNTIME_GOAL_MS
        else "MISS"
    )
    return results


def render(results: dict[str, Any]) -> str:
    return "\n".join(
        [
            f"live_migration: the tiny guest, {results['ram_mb']} MiB, 1 vCPU, "
            f"{results['accel']}, two hypervisors on loopback, TLS-PSK",
            f"  downtime (QEMU query-migrate)     {results['downtime_ms']:>8.0f} ms"
            f"   (limit set {results['downtime_limit_ms']} ms)",
            f"  destination ready (receive)        {results['receive_s']:>8.2f} s",
            f"  disks mirrored (NBD)               {results['disks_s']:>8.2f} s",
            f"  RAM sent                           {results['ram_bytes'] / 2**20:>8.1f} MiB",
            f"  total, receive → settled           {results['total_s']:>8.2f} s",
            f"  anchor: suspend + resume, same guest {results['anchor_save_restore_s']:>6.2f} s",
            f"  ratio total ÷ anchor {results['ratio']:.2f}× (goal ≤ {TOTAL_GOAL:g}×), "
            f"downtime goal ≤ {DOWNTIME_GOAL_MS:.0f} ms: {results['verdict']}",
            f"  guest counter (boot, tick) before {tuple(results['counter']['before'])}, "
            f"after {tuple(results['counter']['after'])}: the same boot",
        ]
    )
