"""Host agents over real QEMU for the agent tests, with the site in the test's process
(imported by name, not from a conftest)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from edgefed.agent.channel import ChannelSettings, CommandLoop
from edgefed.agent.guests import GuestRunner
from edgefed.agent.hostboot import BootMarker
from edgefed.drivers.qemu import QemuHypervisor, QemuSettings
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.wait import eventually

HOSTS = "/edge/v1/hosts"
HW = {"cpus": 2, "memory_mb": 4096, "disks": [{"name": "sda", "size_gb": 40}], "nics": []}
QEMU = QemuSettings(accel="tcg", shutdown_timeout=10)


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
    site: InProcessSite, cred: str, state: Path, boot_id: str, *, site_files: bool = True
) -> AsyncIterator[tuple[CommandLoop, QemuHypervisor]]:
    """A command loop running the real ``GuestRunner`` over a real ``QemuHypervisor``,
    talking to ``site`` in this process. ``site_files=False``: an agent that reads none of
    the site's files (as on another machine): images fetched, volumes over NBD."""
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
        runner=GuestRunner(
            hv,
            network=None,
            sync_network=no_network,
            fetch_image=lambda image: commands[0].fetch_image(image, state / "incoming"),
            export_volume=lambda server_id, volume_id: commands[0].export_volume(
                server_id, volume_id
            ),
            site_files=site_files,
        ),
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
