"""Moves within the site on real QEMU (TCG here), with two hosts and their agents: one
server is migrated (admin) to the other host and confirmed, resized to a flavor with a
bigger disk and reverted, then shelved and unshelved. Its user data writes a marker
file on its root disk at first boot (and syncs), and at every boot prints the marker's
sha256 and the root disk's size: each move's snapshot carries the disk, and the guest
booted from it reads the marker back intact, on whichever host runs it.

The site runs in this process; each agent's command loop runs the real ``GuestRunner``
over its own ``QemuHypervisor`` (its own state directory), without a network. Every
wait is bounded; every QEMU is destroyed at the end.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from agent_qemu_support import (
    NEEDS_QEMU,
    AdminApi,
    V,
    agent,
    destroy_guests,
    enroll,
    image_and_flavors,
    qemu_site_settings,
)

from edgefed.drivers.base import PowerState
from edgefed.guest_image import GuestImage
from edgefed.testkit.inprocess import run_site
from edgefed.testkit.process import pid_alive
from edgefed.testkit.wait import eventually

BOOT = 150.0  # seconds a TCG guest may take to boot (and the site to move it)
GIB_SECTORS = 2 * 1024 * 1024  # 512-byte sectors in 1 GiB

MARKER = "/boot/move-marker"  # on the root disk's FAT partition: it persists, and moves
MARKER_TEXT = "".join(f"{i} edgefed move marker\n" for i in range(1, 2001))
MARKER_SHA = hashlib.sha256(MARKER_TEXT.encode()).hexdigest()
# At every boot: the root disk's size, then the marker's sha256 if the disk has it,
# else write it (the same text as MARKER_TEXT), sync, and say so.
USER_DATA = (
    "#!/bin/sh\n"
    'echo "ROOT-SECTORS-$(cat /sys/block/vda/size)"\n'
    f"if [ -f {MARKER} ]; then\n"
    f'  echo "MARKER-FOUND-$(sha256sum {MARKER} | cut -c1-64)"\n'
    "else\n"
    f'  for i in $(seq 1 2000); do echo "$i edgefed move marker"; done > {MARKER}\n'
    "  sync\n"
    f'  echo "MARKER-WROTE-$(sha256sum {MARKER} | cut -c1-64)"\n'
    "fi\n"
)

pytestmark = NEEDS_QEMU


async def test_migrate_resize_and_shelve_carry_the_disk_between_real_guests(
    tmp_path: Path, guest_image: GuestImage
) -> None:
    # The agents here run their command loops without the heartbeat thread: their hosts
    # must not be taken for down while the test runs.
    settings = qemu_site_settings(tmp_path / "site", host_heartbeat_timeout_seconds=600.0)
    states = {"edge-1": tmp_path / "qemu-1", "edge-2": tmp_path / "qemu-2"}
    pids: list[int] = []
    async with run_site(settings) as site:
        admin = {"X-Auth-Token": await site.token(), **V}
        creds = {host: await enroll(site, host) for host in states}
        image_id = await image_and_flavors(site, admin, guest_image, (("t", 1), ("t2", 2)))

        api = AdminApi(site, admin, within=BOOT)
        act, reaches, console = api.act, api.reaches, api.console

        async def booted(server_id: str, *, sectors: int) -> str:
            """Once the guest (a new one: its console starts empty) printed the marker:
            what it printed, which must be the marker intact on a disk of that size."""
            seen = ""

            async def printed() -> bool:
                nonlocal seen
                seen = await console(server_id)
                return "MARKER-" in seen

            await eventually(printed, within=BOOT, every=0.5, what="the marker on the console")
            assert f"ROOT-SECTORS-{sectors}" in seen, seen[-2000:]
            return seen

        try:
            async with (
                agent(site, creds["edge-1"], states["edge-1"], "boot-1") as (_, hv1),
                agent(site, creds["edge-2"], states["edge-2"], "boot-2") as (_, hv2),
            ):
                hvs = {"edge-1": hv1, "edge-2": hv2}

                def qemu_of(server_id: str) -> dict[str, int | None]:
                    """The QEMU running the guest on each host (None: none there)."""
                    found = {}
                    for host, hv in hvs.items():
                        pid = hv.pid(server_id) if server_id in hv.guest_ids() else None
                        found[host] = pid if pid is not None and pid_alive(pid) else None
                        if pid is not None:
                            pids.append(pid)
                    return found

                def homes(server_id: str) -> list[str]:
                    """The hosts that have the guest (its files), running or not."""
                    return [host for host, hv in hvs.items() if server_id in hv.guest_ids()]

                server_id = await api.create("mover", image_id, USER_DATA)
                first = (await reaches(server_id, "ACTIVE"))["OS-EXT-SRV-ATTR:host"]
                other = "edge-2" if first == "edge-1" else "edge-1"
                out = await booted(server_id, sectors=GIB_SECTORS)
                assert f"MARKER-WROTE-{MARKER_SHA}" in out, out[-2000:]
                before = qemu_of(server_id)
                assert before[first] is not None and before[other] is None

                # 1. Cold migration to the other host, confirmed.
                await act(server_id, {"migrate": None})
                shown = await reaches(server_id, "VERIFY_RESIZE")
                assert shown["OS-EXT-SRV-ATTR:host"] == other
                assert shown["OS-EXT-STS:power_state"] == 1
                out = await booted(server_id, sectors=GIB_SECTORS)
                assert f"MARKER-FOUND-{MARKER_SHA}" in out, out[-2000:]
                assert "MARKER-WROTE" not in out
                now = qemu_of(server_id)
                assert now[first] is None and now[other] is not None
                assert not pid_alive(before[first] or 0)
                assert homes(server_id) == [other]  # the first host's guest is gone
                await act(server_id, {"confirmResize": None})
                shown = await reaches(server_id, "ACTIVE")
                assert shown["OS-EXT-SRV-ATTR:host"] == other
                assert qemu_of(server_id) == now  # confirming keeps the guest as it runs

                # 2. A resize to a bigger disk, reverted.
                await act(server_id, {"resize": {"flavorRef": "t2"}})
                shown = await reaches(server_id, "VERIFY_RESIZE")
                assert shown["flavor"]["original_name"] == "t2"
                out = await booted(server_id, sectors=2 * GIB_SECTORS)
                assert f"MARKER-FOUND-{MARKER_SHA}" in out, out[-2000:]
                assert len(homes(server_id)) == 1  # on either host: the guest moved
                assert qemu_of(server_id)[homes(server_id)[0]] is not None
                await act(server_id, {"revertResize": None})
                shown = await reaches(server_id, "ACTIVE")
                assert shown["flavor"]["original_name"] == "t"
                assert shown["OS-EXT-SRV-ATTR:host"] == other  # the host it had before
                out = await booted(server_id, sectors=GIB_SECTORS)
                assert f"MARKER-FOUND-{MARKER_SHA}" in out, out[-2000:]
                assert homes(server_id) == [other]
                assert qemu_of(server_id)[other] is not None

                # 3. Shelved: no QEMU anywhere; unshelved: the disk comes back.
                await act(server_id, {"shelve": None})
                shown = await reaches(server_id, "SHELVED_OFFLOADED")
                assert shown["OS-EXT-SRV-ATTR:host"] is None
                assert qemu_of(server_id) == {"edge-1": None, "edge-2": None}
                assert homes(server_id) == []
                await act(server_id, {"unshelve": None})
                shown = await reaches(server_id, "ACTIVE")
                assert shown["OS-EXT-STS:power_state"] == 1
                out = await booted(server_id, sectors=GIB_SECTORS)
                assert f"MARKER-FOUND-{MARKER_SHA}" in out, out[-2000:]
                assert homes(server_id) == [shown["OS-EXT-SRV-ATTR:host"]]
                assert qemu_of(server_id)[shown["OS-EXT-SRV-ATTR:host"]] is not None

                # 4. A stopped server moves stopped: its guest is made on the other host
                # but never boots there until it is started, with its disk.
                await act(server_id, {"os-stop": None})
                here = (await reaches(server_id, "SHUTOFF"))["OS-EXT-SRV-ATTR:host"]
                there = "edge-2" if here == "edge-1" else "edge-1"
                await act(server_id, {"migrate": None})
                shown = await reaches(server_id, "VERIFY_RESIZE")
                assert shown["OS-EXT-SRV-ATTR:host"] == there
                assert shown["OS-EXT-STS:power_state"] == 4  # SHUTDOWN
                assert homes(server_id) == [there]
                assert hvs[there].power_state(server_id) == PowerState.SHUTDOWN
                assert qemu_of(server_id) == {"edge-1": None, "edge-2": None}
                assert "Linux version" not in await console(server_id)  # never booted
                await act(server_id, {"confirmResize": None})
                await reaches(server_id, "SHUTOFF")
                await act(server_id, {"os-start": None})
                await reaches(server_id, "ACTIVE")
                out = await booted(server_id, sectors=GIB_SECTORS)
                assert f"MARKER-FOUND-{MARKER_SHA}" in out, out[-2000:]
                assert qemu_of(server_id)[there] is not None
        finally:
            await destroy_guests(states.values(), pids)
    assert not [p for p in pids if pid_alive(p)]
