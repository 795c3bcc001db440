"""A host reboot with real QEMU (TCG here): the guest of an ACTIVE server whose QEMU died
with its agent (as a power cut does) is started again by the next agent, whose host
booted since (another boot id), and its server stays ACTIVE.

The site runs in this process; the agent's command loop runs the real ``GuestRunner``
over ``QemuHypervisor``, without a network. Every wait is bounded; every QEMU is
destroyed at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefed.agent.channel import ChannelSettings, CommandLoop
from edgefed.agent.guests import GuestRunner
from edgefed.agent.hostboot import BootMarker
from edgefed.drivers.base import PowerState
from edgefed.drivers.qemu import QemuHypervisor, QemuSettings
from edgefed.guest_image import GuestImage
from edgefed.store.image import ImageRepository
from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings
from edgefed.testkit.process import pid_alive
from edgefed.testkit.qemu_site import built_guest_image
from edgefed.testkit.wait import eventually

REPO = Path(__file__).resolve().parents[3]
IMAGE_DIR = REPO / ".cache" / "guest-image"
HOSTS = "/edge/v1/hosts"
HW = {"cpus": 2, "memory_mb": 4096, "disks": [{"name": "sda", "size_gb": 40}], "nics": []}
V = {"OpenStack-API-Version": "compute 2.96"}
QEMU = QemuSettings(accel="tcg", shutdown_timeout=10)
READY = "EDGEFED-GUEST ready"

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-system-x86_64") is None or shutil.which("qemu-img") is None,
    reason="QEMU is not installed (make system-deps installs it)",
)


@pytest.fixture(scope="module")
def guest_image() -> GuestImage:
    return built_guest_image(IMAGE_DIR)


async def enroll(site: InProcessSite, hostname: str) -> str:
    """The host's credential, the host unlocked."""
    admin = {"X-Auth-Token": await site.token()}
    r = await site.client.post(
        f"{HOSTS}/enrollment-tokens",
        json={"hostname": hostname, "personality": "worker"},
        headers=admin,
    )
    token = r.json()["enrollment_token"]["token"]
    r = await site.client.post(
        f"{HOSTS}/agent/enroll",
        json={"enrollment_token": token, "hostname": hostname, "hardware": HW},
    )
    assert r.status_code == 201, r.text
    credential = str(r.json()["credential"])
    r = await site.client.post(f"{HOSTS}/{hostname}/unlock", headers=admin)
    assert r.status_code == 200, r.text
    return credential


@contextlib.asynccontextmanager
async def agent(
    site: InProcessSite, cred: str, state: Path, boot_id: str
) -> AsyncIterator[tuple[CommandLoop, QemuHypervisor]]:
    commands: list[CommandLoop] = []
    hv = QemuHypervisor(
        state_dir=state,
        settings=QEMU,
        on_change=lambda g, p: commands[0].guest_changed(g, p) if commands else None,
    )
    await hv.open()

    async def no_network() -> None:
        return None

    loop = CommandLoop(
        site_url="http://berlin.test",
        credential=lambda: cred,
        runner=GuestRunner(hv, network=None, sync_network=no_network),
        network=None,
        client=httpx.AsyncClient(transport=httpx.ASGITransport(app=site.app)),
        settings=ChannelSettings(poll_wait=0.2, network_interval=0.5, resync_interval=3600),
        boot=BootMarker(state / "agent-boot-id", boot_id=lambda: boot_id),
    )
    commands.append(loop)
    task = asyncio.create_task(loop.run())
    try:
        await eventually(
            lambda: asyncio.sleep(0, loop.site_instance is not None or task.done()),
            within=60,
            what="the agent's first full report",
        )
        assert not task.done(), task
        yield loop, hv
    finally:
        loop.stop()
        await asyncio.wait_for(task, 30)
        await hv.close()  # its guests keep running


async def test_a_host_reboot_starts_the_guest_of_an_active_server_again(
    tmp_path: Path, guest_image: GuestImage
) -> None:
    settings = site_settings(
        tmp_path / "site", compute_driver="qemu", local_agent=False, agent_poll_wait_seconds=0.2
    )
    state = tmp_path / "qemu"
    pids: list[int] = []
    async with run_site(settings) as site:
        admin = {"X-Auth-Token": await site.token(), **V}
        cred = await enroll(site, "edge-1")
        image = await ImageRepository(site.app.state.ctx.store).create(
            owner=None, name="tiny", disk_format="qcow2", container_format="bare",
            visibility="public", data=guest_image.disk.read_bytes(), data_dir=settings.data_dir,
        )  # fmt: skip
        r = await site.client.post(
            "/compute/v2.1/flavors",
            json={"flavor": {"name": "t", "ram": 128, "vcpus": 1, "disk": 1, "id": "t"}},
            headers=admin,
        )
        assert r.status_code == 200, r.text

        async def show(server_id: str) -> dict[str, Any]:
            r = await site.client.get(f"/compute/v2.1/servers/{server_id}", headers=admin)
            return dict(r.json()["server"])

        async def status(server_id: str, wanted: str) -> bool:
            return bool((await show(server_id))["status"] == wanted)

        try:
            async with agent(site, cred, state, "boot-1") as (_, hv):
                body = {"name": "vm", "imageRef": image.id, "flavorRef": "t", "networks": "none"}
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
                shown = await show(server_id)
                assert shown["status"] == "ACTIVE"
                assert shown["OS-EXT-STS:power_state"] == 1

                async def booted_again() -> bool:
                    return log.read_text(errors="replace").count(READY) > before

                await eventually(booted_again, within=120, what="the guest booted again")
        finally:
            hv = QemuHypervisor(state_dir=state, settings=QEMU)
            for guest_id in hv.guest_ids():
                await hv.destroy(guest_id)
            await hv.close()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    assert not [p for p in pids if pid_alive(p)]
