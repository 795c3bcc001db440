"""A host reboot with real QEMU (TCG here): the guest of an ACTIVE server whose QEMU died
with its agent (as a power cut does) is started again by the next agent, whose host
booted since (another boot id), and its server stays ACTIVE.

The site runs in this process; the agent's command loop runs the real ``GuestRunner``
over ``QemuHypervisor``, without a network. Every wait is bounded; every QEMU is
destroyed at the end.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

from agent_qemu_support import (
    NEEDS_QEMU,
    V,
    agent,
    destroy_guests,
    enroll,
    image_and_flavors,
    qemu_site_settings,
    show_server,
)

from edgefed.drivers.base import PowerState
from edgefed.guest_image import GuestImage
from edgefed.testkit.inprocess import run_site
from edgefed.testkit.process import pid_alive
from edgefed.testkit.wait import eventually

READY = "EDGEFED-GUEST ready"

pytestmark = NEEDS_QEMU


async def test_a_host_reboot_starts_the_guest_of_an_active_server_again(
    tmp_path: Path, guest_image: GuestImage
) -> None:
    settings = qemu_site_settings(tmp_path / "site")
    state = tmp_path / "qemu"
    pids: list[int] = []
    async with run_site(settings) as site:
        admin = {"X-Auth-Token": await site.token(), **V}
        cred = await enroll(site, "edge-1")
        image_id = await image_and_flavors(site, admin, guest_image)

        async def status(server_id: str, wanted: str) -> bool:
            return bool((await show_server(site, admin, server_id))["status"] == wanted)

        try:
            async with agent(site, cred, state, "boot-1") as (_, hv):
                body = {"name": "vm", "imageRef": image_id, "flavorRef": "t", "networks": "none"}
                r = await site.client.post(
                    "/compute/v2.1/servers", json={"server": body}, headers=admin
                )
                assert r.status_code == 202, r.text
                server_id = str(r.json()["server"]["id"])
                await eventually(lambda: status(server_id, "ACTIVE"), within=120, what="ACTIVE")
                pid = hv.pid(server_id)
                assert pid is not None
                pids.append(pid)

            # The power goes: QEMU dies with its agent; the guest's files remain.
            os.kill(pid, signal.SIGKILL)
            log = state / "guests" / server_id / "console.log"
            before = log.read_text(errors="replace").count(READY)
            await eventually(
                lambda: asyncio.sleep(0, not pid_alive(pid)), within=10, what="QEMU gone"
            )

            async with agent(site, cred, state, "boot-2") as (_, hv):
                # Started before the agent's first report: the server never left ACTIVE.
                again = hv.pid(server_id)
                assert again is not None and again != pid and pid_alive(again)
                pids.append(again)
                assert hv.power_state(server_id) == PowerState.RUNNING
                shown = await show_server(site, admin, server_id)
                assert shown["status"] == "ACTIVE"
                assert shown["OS-EXT-STS:power_state"] == 1

                async def booted_again() -> bool:
                    return log.read_text(errors="replace").count(READY) > before

                await eventually(booted_again, within=120, what="the guest booted again")
        finally:
            await destroy_guests([state], pids)
    assert not [p for p in pids if pid_alive(p)]
