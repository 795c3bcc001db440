"""Live migration on real QEMU (TCG), with two hosts of one site and their agents.

The guest's user data counts its boots on its root disk, then prints a counter every
``TICK_S`` and writes it to the disk (synced), forever. Live-migrated
(``os-migrateLive``), the server is MIGRATING, then ACTIVE on the other host; the
guest never stopped from its own view: the counter read through the new host's agent
goes on from where it was with the same boot number, and no kernel booted there. The
first host's QEMU and files are gone. A hard reboot on the new host then boots from
the disk that moved: the boot count is 2 and the last counter written before the move
is there. Last, a move to a host whose agent stopped fails: the server stays ACTIVE on
its host, the guest runs on there, and the instance action says why.

Both streams (NBD and migration) are TLS with a key per migration, on loopback.

A second guest has a volume hot-plugged after its boot, next to a spare one then
unplugged (both agents read none of the site's files: the volume is the attachment's
NBD export), and writes a counter to it
each tick after reading back, from the device (caches dropped), what the tick before
wrote. Live-migrated, it runs on with the same boot, every read finds the previous
write (those made at the source too), the volume file on the site has the last ones,
and the attachment names the new host: the destination opened the same volume (the
export granted to it for the move), at the PCI slot the hot-plug gave it at the source.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from agent_qemu_support import (
    NEEDS_QEMU,
    AdminApi,
    C,
    V,
    agent,
    destroy_guests,
    enroll,
    image_and_flavors,
    qemu_site_settings,
    show_server,
)

from edgefed.drivers.agent import AgentDriver
from edgefed.guest_image import GuestImage
from edgefed.services.compute.state import ComputeState
from edgefed.services.volume.state import VolumeState
from edgefed.testkit.inprocess import run_site
from edgefed.testkit.process import pid_alive
from edgefed.testkit.wait import eventually

BOOT = 90.0  # seconds a TCG guest may take to boot (and the site to move it)
TICK_S = 0.2
USER_DATA = (
    "#!/bin/sh\n"
    'echo "LAST-TICK-$(cat /boot/tick 2>/dev/null || echo 0)"\n'
    "n=$(cat /boot/boots 2>/dev/null || echo 0); n=$((n+1)); echo $n > /boot/boots; sync\n"
    "i=0\n"
    'while true; do i=$((i+1)); echo "TICK-$n-$i"; echo $i > /boot/tick; sync; '
    f"sleep {TICK_S}; done\n"
)
TICK = re.compile(r"TICK-(\d+)-(\d+)")
BOOTLOADER = "SYSLINUX"  # the image's boot loader: the first line of every boot

pytestmark = NEEDS_QEMU


def last_tick(text: str) -> tuple[int, int] | None:
    found = TICK.findall(text)
    return (int(found[-1][0]), int(found[-1][1])) if found else None


async def test_live_migration_keeps_the_guest_running_on_the_other_host(
    tmp_path: Path, guest_image: GuestImage
) -> None:
    # The hosts' management addresses (where a destination listens) on loopback.
    settings = qemu_site_settings(
        tmp_path / "site", host_heartbeat_timeout_seconds=600.0, management_subnet="127.0.0.0/24"
    )
    states = {"edge-1": tmp_path / "qemu-1", "edge-2": tmp_path / "qemu-2"}
    pids: list[int] = []
    async with run_site(settings) as site:
        admin = {"X-Auth-Token": await site.token(), **V}
        creds = {host: await enroll(site, host) for host in states}
        image_id = await image_and_flavors(site, admin, guest_image)

        api = AdminApi(site, admin, within=BOOT)
        act, reaches, console = api.act, api.reaches, api.console

        async def ticks_past(server_id: str, after: int) -> tuple[tuple[int, int], str]:
            seen = ""

            async def counted() -> bool:
                nonlocal seen
                seen = await console(server_id)
                tick = last_tick(seen)
                return tick is not None and tick[1] > after

            await eventually(counted, within=BOOT, every=0.2, what=f"a counter past {after}")
            tick = last_tick(seen)
            assert tick is not None
            return tick, seen

        try:
            async with (
                agent(site, creds["edge-1"], states["edge-1"], "boot-1") as (loop1, hv1),
                agent(site, creds["edge-2"], states["edge-2"], "boot-2") as (loop2, hv2),
            ):
                hvs = {"edge-1": hv1, "edge-2": hv2}
                loops = {"edge-1": loop1, "edge-2": loop2}

                def qemu_on(host: str, server_id: str) -> int | None:
                    hv = hvs[host]
                    pid = hv.pid(server_id) if server_id in hv.guest_ids() else None
                    if pid is not None:
                        pids.append(pid)
                    return pid if pid is not None and pid_alive(pid) else None

                server_id = await api.create("live", image_id, USER_DATA)
                first = (await reaches(server_id, "ACTIVE"))["OS-EXT-SRV-ATTR:host"]
                other = "edge-2" if first == "edge-1" else "edge-1"
                before, out = await ticks_past(server_id, 5)
                assert before[0] == 1 and BOOTLOADER in out  # what a boot prints first
                source_pid = qemu_on(first, server_id)
                assert source_pid is not None and qemu_on(other, server_id) is None

                # 1. Live-migrated: MIGRATING, then ACTIVE on the other host, running on.
                await act(server_id, {"os-migrateLive": {"host": None,
                                                         "block_migration": "auto"}})  # fmt: skip
                assert (await show_server(site, admin, server_id))["status"] == "MIGRATING"
                shown = await reaches(server_id, "ACTIVE")
                assert shown["OS-EXT-SRV-ATTR:host"] == other
                assert shown["OS-EXT-STS:power_state"] == 1
                assert not pid_alive(source_pid)
                assert server_id not in hvs[first].guest_ids()  # its files are gone
                assert qemu_on(other, server_id) is not None
                now, out = await ticks_past(server_id, before[1] + 3)
                assert now[0] == before[0], out[-1000:]  # the same boot, counting on
                assert BOOTLOADER not in out  # nothing booted on the new host
                r = await site.client.get(f"{C}/servers/{server_id}/os-instance-actions",
                                          headers=admin)  # fmt: skip
                assert r.json()["instanceActions"][0]["action"] == "live-migration"

                # 2. The disk moved with it: a hard reboot there boots from it.
                await act(server_id, {"reboot": {"type": "HARD"}})
                await reaches(server_id, "ACTIVE")
                boot = ""

                async def booted_again() -> bool:
                    nonlocal boot
                    seen = await console(server_id)
                    boot = seen.rpartition(BOOTLOADER)[2]
                    return BOOTLOADER in seen and last_tick(boot) is not None

                await eventually(booted_again, within=BOOT, every=0.2, what="the second boot")
                rebooted = last_tick(boot)
                assert rebooted is not None and rebooted[0] == 2, boot[-1000:]
                written = re.search(r"LAST-TICK-(\d+)", boot)
                assert written is not None and int(written.group(1)) >= now[1] - 1, boot[-1000:]

                # 3. A move to a host whose agent stopped fails; the guest runs on here.
                driver = site.app.state.ctx.slots.require(ComputeState).driver
                assert isinstance(driver, AgentDriver)
                driver.timeouts = dataclasses.replace(driver.timeouts, spawn=3.0, power=3.0)
                loops[first].stop()
                await act(server_id, {"os-migrateLive": {"host": first,
                                                         "block_migration": "auto"}})  # fmt: skip
                last: dict[str, Any] = {}

                async def failed() -> bool:
                    # The action's answer comes first (the server may still be ACTIVE
                    # then); the move fails once the agent's 3 s are up.
                    r = await site.client.get(f"{C}/servers/{server_id}/os-instance-actions",
                                              headers=admin)  # fmt: skip
                    last.update(r.json()["instanceActions"][0])
                    return last.get("message") is not None

                await eventually(
                    failed, within=60, every=0.2, what="the move to a stopped agent failed"
                )
                assert last["action"] == "live-migration"
                assert f"live-migration to {first} failed" in (last["message"] or ""), last
                shown = await reaches(server_id, "ACTIVE")
                assert shown["OS-EXT-SRV-ATTR:host"] == other
                later, _ = await ticks_past(server_id, rebooted[1] + 3)
                assert later[0] == 2
                assert server_id not in hvs[first].guest_ids()
        finally:
            await destroy_guests(states.values(), pids)
    assert not [p for p in pids if pid_alive(p)]


def volume_ticker(serial: str) -> str:
    """User data: counts its boots, then each tick: once the disk with ``serial`` is
    there, reads its first bytes from the device (the page cache dropped), writes
    ``VOL-<boot>-<tick>`` there (fsync), and prints both."""
    return (
        "#!/bin/sh\n"
        "n=$(cat /boot/boots 2>/dev/null || echo 0); n=$((n+1)); echo $n > /boot/boots; sync\n"
        "i=0\n"
        "while true; do i=$((i+1)); dev=''\n"
        "  for d in /sys/block/vd*; do\n"
        f'    [ "$(cat $d/serial 2>/dev/null)" = "{serial}" ] && dev=/dev/${{d##*/}}\n'
        "  done\n"
        '  if [ -n "$dev" ]; then\n'
        "    echo 3 > /proc/sys/vm/drop_caches\n"
        "    got=$(head -c 16 $dev | tr -cd 'A-Z0-9-')\n"
        "    printf 'VOL-%d-%d.' $n $i | dd of=$dev conv=fsync 2>/dev/null "
        '&& echo "VTICK-$n-$i-READ-${got:-none}"\n'
        '  else echo "VTICK-$n-$i"; fi\n'
        f"  sleep {TICK_S}\n"
        "done\n"
    )


VTICK = re.compile(r"VTICK-(\d+)-(\d+)-READ-(\S+)")


def volume_ticks(text: str) -> list[tuple[int, int, str]]:
    """(boot, tick, what the tick read) of each tick that wrote the volume."""
    return [(int(b), int(i), got) for b, i, got in VTICK.findall(text)]


@pytest.mark.skipif(shutil.which("qemu-storage-daemon") is None,
                    reason="needs qemu-storage-daemon")  # fmt: skip
async def test_live_migration_of_a_guest_writing_a_hot_plugged_volume(
    tmp_path: Path, guest_image: GuestImage
) -> None:
    settings = qemu_site_settings(
        tmp_path / "site", host_heartbeat_timeout_seconds=600.0,
        management_subnet="127.0.0.0/24", volume_export_host="127.0.0.1",
    )  # fmt: skip
    states = {"edge-1": tmp_path / "qemu-1", "edge-2": tmp_path / "qemu-2"}
    pids: list[int] = []
    async with run_site(settings) as site:
        admin = {"X-Auth-Token": await site.token(), **V}
        token = {"X-Auth-Token": admin["X-Auth-Token"]}
        exports = site.app.state.ctx.slots.require(VolumeState).exports
        creds = {host: await enroll(site, host) for host in states}
        image_id = await image_and_flavors(site, admin, guest_image)
        volume_ids = []
        for _ in range(2):
            r = await site.client.post("/volume/v3/volumes", json={"volume": {"size": 1}},
                                       headers=token)  # fmt: skip
            assert r.status_code == 202, r.text
            volume_ids.append(str(r.json()["volume"]["id"]))
        spare_id, volume_id = volume_ids
        volume_file = settings.data_dir / "volumes" / f"{volume_id}.raw"
        api = AdminApi(site, admin, within=BOOT)

        async def written_past(
            server_id: str, after: int
        ) -> tuple[list[tuple[int, int, str]], str]:
            seen = ""

            async def counted() -> bool:
                nonlocal seen
                seen = await api.console(server_id)
                ticks = volume_ticks(seen)
                return bool(ticks) and ticks[-1][1] > after

            await eventually(counted, within=BOOT, every=0.2, what=f"a volume write past {after}")
            return volume_ticks(seen), seen

        try:
            async with (
                agent(site, creds["edge-1"], states["edge-1"], "boot-1", site_files=False)
                as (_, hv1),
                agent(site, creds["edge-2"], states["edge-2"], "boot-2", site_files=False)
                as (_, hv2),
            ):  # fmt: skip
                hvs = {"edge-1": hv1, "edge-2": hv2}
                server_id = await api.create("vol", image_id, volume_ticker(volume_id[:20]))
                first = (await api.reaches(server_id, "ACTIVE"))["OS-EXT-SRV-ATTR:host"]
                other = "edge-2" if first == "edge-1" else "edge-1"
                source_pid = hvs[first].pid(server_id)
                assert source_pid is not None
                pids.append(source_pid)
                # Hot-plugged into the running guest, over the attachment's NBD export,
                # after a spare volume that is then unplugged: the volume sits at the
                # PCI slot after the spare's, not where a command line would put it.
                for attached in (spare_id, volume_id):
                    r = await site.client.post(
                        f"{C}/servers/{server_id}/os-volume_attachments",
                        json={"volumeAttachment": {"volumeId": attached}}, headers=admin,
                    )  # fmt: skip
                    assert r.status_code == 200, r.text
                await written_past(server_id, 0)  # booted, the volume seen: it unplugs
                r = await site.client.delete(
                    f"{C}/servers/{server_id}/os-volume_attachments/{spare_id}", headers=admin
                )
                assert r.status_code == 202, r.text

                async def released() -> bool:
                    r = await site.client.get(f"/volume/v3/volumes/{spare_id}", headers=token)
                    return bool(r.json()["volume"]["status"] == "available")

                await eventually(released, within=BOOT, what="the spare volume detached")
                assert len(exports.exported()) == 1
                before, _ = await written_past(server_id, 0)
                before, out = await written_past(server_id, before[0][1] + 3)
                assert before[-1][0] == 1, out[-1000:]

                move = {"os-migrateLive": {"host": None, "block_migration": "auto"}}
                await api.act(server_id, move)
                shown = await api.reaches(server_id, "ACTIVE")
                assert shown["OS-EXT-SRV-ATTR:host"] == other
                assert not pid_alive(source_pid)
                target_pid = hvs[other].pid(server_id)
                assert target_pid is not None
                pids.append(target_pid)
                after, out = await written_past(server_id, before[-1][1] + 5)
                # The same boot, counting on; each read found the tick before's write,
                # the first of them one the source's QEMU made.
                assert after[0][1] > before[-1][1] and {b for b, _, _ in after} == {1}, out
                for _, tick, got in after:
                    assert got == f"VOL-1-{tick - 1}", out[-2000:]
                last = after[-1][1]
                with volume_file.open("rb") as f:  # on the site's disk, through the export
                    head = f.read(32)
                assert int(head.split(b".")[0].rsplit(b"-", 1)[1]) >= last, head
                # The attachment names the new host; still one export, the attachment's.
                r = await site.client.get(f"/volume/v3/volumes/{volume_id}", headers=token)
                attachments = r.json()["volume"]["attachments"]
                assert [(a["server_id"], a["host_name"]) for a in attachments] == [
                    (server_id, other)
                ]
                assert len(exports.exported()) == 1
        finally:
            await exports.close_all()
            await destroy_guests(states.values(), pids)
    assert not [p for p in pids if pid_alive(p)]
