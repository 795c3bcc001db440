"""The agent's command loop against an in-process qemu site (its HTTP through ASGI), with
a stand-in for QEMU: it adopts and reports the guests it finds, runs the site's
commands and answers them, and reports guests that change by themselves."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefed.agent.channel import ChannelSettings, CommandLoop, ImageUnavailable
from edgefed.drivers.base import ImageData, PowerState
from edgefed.store.image import ImageRepository
from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings
from edgefed.testkit.wait import eventually

HOSTS = "/edge/v1/hosts"
HW = {"cpus": 8, "memory_mb": 16384, "disks": [{"name": "sda", "size_gb": 240}], "nics": []}
V = {"OpenStack-API-Version": "compute 2.96"}


class StandInHypervisor:
    def __init__(self, guests: dict[str, PowerState]) -> None:
        self.guests = dict(guests)

    def guest_ids(self) -> list[str]:
        return sorted(self.guests)

    def power_state(self, guest_id: str) -> PowerState:
        return self.guests.get(guest_id, PowerState.NOSTATE)


class StandInRunner:
    """What ``GuestRunner`` does, in memory."""

    def __init__(self, guests: dict[str, PowerState]) -> None:
        self.hv = StandInHypervisor(guests)
        self.ran: list[tuple[str, str | None]] = []

    async def adopt(self) -> dict[str, PowerState]:
        return dict(self.hv.guests)

    def facts(self) -> dict[str, Any]:
        return {"hypervisor_type": "QEMU", "hypervisor_version": 7002022, "accel": "tcg",
                "cpu_model": "qemu64"}  # fmt: skip

    async def run(self, kind: str, server_id: str | None, payload: Any) -> dict[str, Any]:
        self.ran.append((kind, server_id))
        if kind == "spawn":
            guest_id = payload["instance"]["id"]
            self.hv.guests[guest_id] = PowerState.RUNNING
            return {"power_state": 1}
        assert server_id is not None
        if kind == "stop":
            self.hv.guests[server_id] = PowerState.SHUTDOWN
        if kind == "destroy":
            self.hv.guests.pop(server_id, None)
            return {}
        return {"power_state": int(self.hv.guests[server_id])}


async def credential(site: InProcessSite, hostname: str) -> str:
    ctx = site.app.state.ctx
    admin = {"X-Auth-Token": await site.token()}
    r = await site.client.post(
        f"{HOSTS}/enrollment-tokens",
        json={"hostname": hostname, "personality": "worker"},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    token = r.json()["enrollment_token"]["token"]
    r = await site.client.post(
        f"{HOSTS}/agent/enroll",
        json={"enrollment_token": token, "hostname": hostname, "hardware": HW},
    )
    assert r.status_code == 201, r.text
    cred = str(r.json()["credential"])
    r = await site.client.post(f"{HOSTS}/{hostname}/unlock", headers=admin)
    assert r.status_code == 200, r.text
    assert ctx.host_commands is not None
    return cred


async def test_the_loop_runs_the_site_s_commands_and_reports_its_guests(tmp_path: Path) -> None:
    settings = site_settings(
        tmp_path / "site", compute_driver="qemu", local_agent=False, agent_poll_wait_seconds=0.2
    )
    async with run_site(settings) as site:
        cred = await credential(site, "edge-1")
        runner = StandInRunner({})
        loop = CommandLoop(
            site_url="http://berlin.test",
            credential=lambda: cred,
            runner=runner,  # type: ignore[arg-type]
            network=None,
            client=httpx.AsyncClient(transport=httpx.ASGITransport(app=site.app)),
            settings=ChannelSettings(poll_wait=0.2, network_interval=0.2),
        )
        running = asyncio.create_task(loop.run())
        try:
            headers = {"X-Auth-Token": await site.token(), **V}
            image = await ImageRepository(site.app.state.ctx.store).create(
                owner=None, name="tiny", disk_format="qcow2", container_format="bare",
                visibility="public", data=b"x" * 512, data_dir=settings.data_dir,
            )  # fmt: skip
            body = {"name": "vm", "imageRef": image.id, "flavorRef": "1", "networks": "none"}
            r = await site.client.post(
                "/compute/v2.1/servers", json={"server": body}, headers=headers
            )
            server_id = r.json()["server"]["id"]

            async def status(wanted: str) -> bool:
                r = await site.client.get(f"/compute/v2.1/servers/{server_id}", headers=headers)
                return bool(r.json()["server"]["status"] == wanted)

            await eventually(lambda: status("ACTIVE"), within=10, what="ACTIVE")
            assert runner.ran == [("spawn", server_id)]
            r = await site.client.get("/compute/v2.1/os-hypervisors/detail", headers=headers)
            assert r.json()["hypervisors"][0]["hypervisor_type"] == "QEMU"

            # The guest powers off by itself: the loop reports it, the server is SHUTOFF.
            runner.hv.guests[server_id] = PowerState.SHUTDOWN
            loop.guest_changed(server_id, PowerState.SHUTDOWN)
            await eventually(lambda: status("SHUTOFF"), within=10, what="SHUTOFF")

            r = await site.client.delete(f"/compute/v2.1/servers/{server_id}", headers=headers)
            assert r.status_code == 204
            await eventually(
                lambda: asyncio.sleep(0, ("destroy", server_id) in runner.ran),
                within=10,
                what="the guest destroyed",
            )
            assert runner.hv.guests == {}
        finally:
            loop.stop()
            await asyncio.wait_for(running, 10)


async def test_image_data_is_fetched_and_checked_by_its_hash(tmp_path: Path) -> None:
    settings = site_settings(
        tmp_path / "site", compute_driver="qemu", local_agent=False, agent_poll_wait_seconds=0.2
    )
    async with run_site(settings) as site:
        cred = await credential(site, "edge-1")
        headers = {"X-Auth-Token": await site.token(), **V}
        data = b"the image's data" * 1000
        image = await ImageRepository(site.app.state.ctx.store).create(
            owner=None, name="tiny", disk_format="qcow2", container_format="bare",
            visibility="public", data=data, data_dir=settings.data_dir,
        )  # fmt: skip
        body = {"name": "vm", "imageRef": image.id, "flavorRef": "1", "networks": "none"}
        r = await site.client.post("/compute/v2.1/servers", json={"server": body}, headers=headers)
        assert r.status_code == 202
        queue = site.app.state.ctx.host_commands

        async def placed() -> bool:
            return bool(await queue.commands.open_commands())

        await eventually(placed, within=10, what="the server placed on edge-1")
        loop = CommandLoop(
            site_url="http://berlin.test",
            credential=lambda: cred,
            runner=StandInRunner({}),  # type: ignore[arg-type]
            network=None,
            client=httpx.AsyncClient(transport=httpx.ASGITransport(app=site.app)),
        )
        good = ImageData(id=image.id, checksum=f"sha256:{image.blob_sha256}")
        path = await loop.fetch_image(good, tmp_path / "incoming")
        assert path.read_bytes() == data
        bad = ImageData(id=image.id, checksum="sha256:" + "0" * 64)
        with pytest.raises(ImageUnavailable, match="does not match its sha256"):
            await loop.fetch_image(bad, tmp_path / "incoming")
        assert sorted(p.name for p in (tmp_path / "incoming").iterdir()) == [path.name]
