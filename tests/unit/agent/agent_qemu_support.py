"""Host agents over real QEMU for the agent tests, with the site in the test's process
(imported by name, not from a conftest)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import signal
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefed.agent.channel import ChannelSettings, CommandLoop
from edgefed.agent.guests import GuestRunner
from edgefed.agent.hostboot import BootMarker
from edgefed.core.settings import SiteSettings
from edgefed.drivers.qemu import QemuHypervisor, QemuSettings
from edgefed.guest_image import GuestImage
from edgefed.store.image import ImageRepository
from edgefed.testkit.inprocess import InProcessSite, site_settings
from edgefed.testkit.wait import eventually

REPO = Path(__file__).resolve().parents[3]
IMAGE_DIR = REPO / ".cache" / "guest-image"
V = {"OpenStack-API-Version": "compute 2.96"}
C = "/compute/v2.1"
HOSTS = "/edge/v1/hosts"
HW = {"cpus": 2, "memory_mb": 4096, "disks": [{"name": "sda", "size_gb": 40}], "nics": []}
QEMU = QemuSettings(accel="tcg", shutdown_timeout=10)
# A test module's ``pytestmark``: it needs QEMU.
NEEDS_QEMU = pytest.mark.skipif(
    shutil.which("qemu-system-x86_64") is None or shutil.which("qemu-img") is None,
    reason="QEMU is not installed (make system-deps installs it)",
)


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


def qemu_site_settings(root: Path, **overrides: Any) -> SiteSettings:
    """A qemu site in this process whose agents the test runs (none of its own)."""
    return site_settings(
        root, compute_driver="qemu", local_agent=False, agent_poll_wait_seconds=0.2, **overrides
    )


async def image_and_flavors(
    site: InProcessSite,
    headers: dict[str, str],
    guest_image: GuestImage,
    flavors: Iterable[tuple[str, int]] = (("t", 1),),
) -> str:
    """The id of a public image of ``guest_image``; a flavor (id and name, disk in GB) of
    128 MB and one vCPU for each of ``flavors``."""
    image = await ImageRepository(site.app.state.ctx.store).create(
        owner=None, name="tiny", disk_format="qcow2", container_format="bare",
        visibility="public", data=guest_image.disk.read_bytes(),
        data_dir=site.settings.data_dir,
    )  # fmt: skip
    for flavor_id, disk in flavors:
        r = await site.client.post(
            f"{C}/flavors",
            json={"flavor": {"name": flavor_id, "ram": 128, "vcpus": 1, "disk": disk,
                             "id": flavor_id}},
            headers=headers,
        )  # fmt: skip
        assert r.status_code == 200, r.text
    return str(image.id)


async def show_server(
    site: InProcessSite, headers: dict[str, str], server_id: str
) -> dict[str, Any]:
    r = await site.client.get(f"{C}/servers/{server_id}", headers=headers)
    return dict(r.json()["server"])


@dataclass
class AdminApi:
    """The site's compute API as the admin (``headers``), its waits bounded by ``within``
    seconds (a TCG guest's boot, or a move)."""

    site: InProcessSite
    headers: dict[str, str]
    within: float

    async def create(self, name: str, image_id: str, user_data: str) -> str:
        """The id of a server of ``image_id`` and flavor t, without networks, that runs
        ``user_data``."""
        body = {
            "name": name,
            "imageRef": image_id,
            "flavorRef": "t",
            "networks": "none",
            "user_data": base64.b64encode(user_data.encode()).decode(),
        }
        r = await self.site.client.post(f"{C}/servers", json={"server": body},
                                        headers=self.headers)  # fmt: skip
        assert r.status_code == 202, r.text
        return str(r.json()["server"]["id"])

    async def act(self, server_id: str, body: dict[str, Any]) -> None:
        r = await self.site.client.post(f"{C}/servers/{server_id}/action", json=body,
                                        headers=self.headers)  # fmt: skip
        assert r.status_code == 202, r.text

    async def reaches(self, server_id: str, wanted: str) -> dict[str, Any]:
        """The server once ``wanted`` with no task under way; ERROR fails the test."""
        shown: dict[str, Any] = {}

        async def there() -> bool:
            shown.update(await show_server(self.site, self.headers, server_id))
            assert shown["status"] != "ERROR", shown.get("fault")
            return bool(shown["status"] == wanted and shown["OS-EXT-STS:task_state"] is None)

        await eventually(there, within=self.within, every=0.2, what=wanted)
        return shown

    async def console(self, server_id: str) -> str:
        """The console as the API reads it: from the agent of the server's host."""
        r = await self.site.client.post(
            f"{C}/servers/{server_id}/action",
            json={"os-getConsoleOutput": {"length": None}},
            headers=self.headers,
        )
        assert r.status_code == 200, r.text
        return str(r.json()["output"])


async def destroy_guests(states: Iterable[Path], pids: Iterable[int]) -> None:
    """Every QEMU guest kept in ``states`` destroyed, and every QEMU of ``pids`` killed."""
    for state in states:
        hv = QemuHypervisor(state_dir=state, settings=QEMU)
        for guest_id in hv.guest_ids():
            await hv.destroy(guest_id)
        await hv.close()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
