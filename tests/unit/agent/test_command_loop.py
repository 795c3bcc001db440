"""The agent's command loop against an in-process qemu site (its HTTP through ASGI), with
a stand-in for QEMU: it adopts and reports the guests it finds, runs the site's
commands and answers them, and reports guests that change by themselves."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefed.agent.channel import ChannelSettings, CommandLoop
from edgefed.agent.hostboot import BootMarker
from edgefed.agent.image_fetch import ImageUnavailable
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
        if kind == "start":
            self.hv.guests[server_id] = PowerState.RUNNING
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


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Agent:
    """A command loop with a stand-in runner over the site, running until stopped."""

    def __init__(
        self,
        site: InProcessSite,
        cred: str,
        guests: dict[str, PowerState],
        *,
        boot: BootMarker | None = None,
        clock: FakeClock | None = None,
    ) -> None:
        self.runner = StandInRunner(guests)
        self.loop = CommandLoop(
            site_url="http://berlin.test",
            credential=lambda: cred,
            runner=self.runner,  # type: ignore[arg-type]
            network=None,
            client=httpx.AsyncClient(transport=httpx.ASGITransport(app=site.app)),
            # the periodic resync is driven by the test (resync())
            settings=ChannelSettings(poll_wait=0.2, network_interval=0.2, resync_interval=3600),
            boot=boot,
            clock=clock or FakeClock(),
        )
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Agent:
        self.task = asyncio.create_task(self.loop.run())
        loop = self.loop
        await eventually(
            lambda: asyncio.sleep(0, loop.site_instance is not None),
            within=10,
            what="the agent's first full report",
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.loop.stop()
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)


class Servers:
    def __init__(self, site: InProcessSite, settings: Any) -> None:
        self.site = site
        self.settings = settings

    async def headers(self) -> dict[str, str]:
        return {"X-Auth-Token": await self.site.token(), **V}

    async def boot(self, name: str) -> str:
        image = await ImageRepository(self.site.app.state.ctx.store).create(
            owner=None, name="tiny", disk_format="qcow2", container_format="bare",
            visibility="public", data=b"x" * 512, data_dir=self.settings.data_dir,
        )  # fmt: skip
        body = {"name": name, "imageRef": image.id, "flavorRef": "1", "networks": "none"}
        r = await self.site.client.post(
            "/compute/v2.1/servers", json={"server": body}, headers=await self.headers()
        )
        assert r.status_code == 202, r.text
        server_id = str(r.json()["server"]["id"])
        await self.reaches(server_id, "ACTIVE")
        return server_id

    async def show(self, server_id: str) -> dict[str, Any]:
        r = await self.site.client.get(
            f"/compute/v2.1/servers/{server_id}", headers=await self.headers()
        )
        return dict(r.json()["server"])

    async def reaches(self, server_id: str, status: str) -> None:
        async def check() -> bool:
            return bool((await self.show(server_id))["status"] == status)

        await eventually(check, within=10, every=0.02, what=f"{server_id} {status}")

    async def stop(self, server_id: str) -> None:
        r = await self.site.client.post(
            f"/compute/v2.1/servers/{server_id}/action",
            json={"os-stop": None},
            headers=await self.headers(),
        )
        assert r.status_code == 202, r.text
        await self.reaches(server_id, "SHUTOFF")


async def test_after_a_host_boot_the_agent_restarts_the_guests_the_site_expects_running(
    tmp_path: Path,
) -> None:
    settings = site_settings(
        tmp_path / "site", compute_driver="qemu", local_agent=False, agent_poll_wait_seconds=0.2
    )
    async with run_site(settings) as site:
        cred = await credential(site, "edge-1")
        servers = Servers(site, settings)
        async with Agent(site, cred, {}):
            a, b = await servers.boot("a"), await servers.boot("b")
            await servers.stop(b)

        # The host booted: both QEMUs are gone, their files are still there.
        marker = BootMarker(tmp_path / "agent-boot-id", boot_id=lambda: "boot-2")
        gone = {a: PowerState.SHUTDOWN, b: PowerState.SHUTDOWN}
        async with Agent(site, cred, gone, boot=marker) as agent:
            # a is started before the agent's first report: it never shows SHUTOFF
            assert agent.runner.ran == [("start", a)]
            shown = await servers.show(a)
            assert shown["status"] == "ACTIVE" and shown["OS-EXT-STS:power_state"] == 1
            assert (await servers.show(b))["status"] == "SHUTOFF"
        assert marker.path.read_text().strip() == "boot-2"

        # A restart of the agent in the same boot: a guest that powered off meanwhile
        # stays off (it did so by itself), and its server is SHUTOFF.
        gone = {a: PowerState.SHUTDOWN, b: PowerState.SHUTDOWN}
        async with Agent(site, cred, gone, boot=marker) as agent:
            await servers.reaches(a, "SHUTOFF")
            assert agent.runner.ran == []


async def test_a_host_boot_resumes_nothing_when_the_site_says_so(tmp_path: Path) -> None:
    settings = site_settings(
        tmp_path / "site",
        compute_driver="qemu",
        local_agent=False,
        agent_poll_wait_seconds=0.2,
        resume_guests_on_host_boot=False,
    )
    async with run_site(settings) as site:
        cred = await credential(site, "edge-1")
        servers = Servers(site, settings)
        async with Agent(site, cred, {}):
            a = await servers.boot("a")
        marker = BootMarker(tmp_path / "agent-boot-id", boot_id=lambda: "boot-2")
        async with Agent(site, cred, {a: PowerState.SHUTDOWN}, boot=marker) as agent:
            await servers.reaches(a, "SHUTOFF")
            assert agent.runner.ran == []


def test_the_boot_marker_tells_a_host_boot_from_an_agent_restart(tmp_path: Path) -> None:
    boot = ["boot-1"]
    marker = BootMarker(tmp_path / "state" / "agent-boot-id", boot_id=lambda: boot[0])
    assert marker.booted()  # never settled: a new state directory
    marker.settle()
    assert not marker.booted()
    boot[0] = "boot-2"
    assert marker.booted()
    # A system without boot ids: every start may follow a boot (as Nova assumes).
    assert BootMarker(tmp_path / "other", boot_id=lambda: None).booted()


async def test_a_lost_power_report_heals_at_the_next_resync(tmp_path: Path) -> None:
    settings = site_settings(
        tmp_path / "site", compute_driver="qemu", local_agent=False, agent_poll_wait_seconds=0.2
    )
    async with run_site(settings) as site:
        cred = await credential(site, "edge-1")
        servers = Servers(site, settings)
        clock = FakeClock()
        async with Agent(site, cred, {}, clock=clock) as agent:
            a = await servers.boot("a")
            loop = agent.loop
            # Nothing changed since the last full report: nothing is sent.
            await loop.report_all()
            assert not await loop.resync()

            # The guest powered off and its report was lost: the digest differs.
            agent.runner.hv.guests[a] = PowerState.SHUTDOWN
            assert await loop.resync()
            await servers.reaches(a, "SHUTOFF")
            assert not await loop.resync()

            # Whatever the digest, a full report at least every resync_max_quiet.
            clock.now += loop.settings.resync_max_quiet - 1
            assert not await loop.resync()
            clock.now += 2
            assert await loop.resync()
            assert not await loop.resync()


async def test_a_resync_waits_for_the_commands_under_way(tmp_path: Path) -> None:
    settings = site_settings(
        tmp_path / "site", compute_driver="qemu", local_agent=False, agent_poll_wait_seconds=0.2
    )
    async with run_site(settings) as site:
        cred = await credential(site, "edge-1")
        servers = Servers(site, settings)
        async with Agent(site, cred, {}) as agent:
            a = await servers.boot("a")
            release = asyncio.Event()
            ran = agent.runner.run

            async def slow(kind: str, server_id: str | None, payload: Any) -> dict[str, Any]:
                result = await ran(kind, server_id, payload)
                await release.wait()  # the stop has happened, its answer is not sent
                return result

            agent.runner.run = slow  # type: ignore[method-assign]
            r = await agent.loop.client.post(  # not through the test's site client
                "http://berlin.test/compute/v2.1/servers/" + a + "/action",
                json={"os-stop": None},
                headers=await servers.headers(),
            )
            assert r.status_code == 202
            await eventually(
                lambda: asyncio.sleep(0, agent.runner.hv.guests[a] == PowerState.SHUTDOWN),
                within=10,
                what="the stop under way",
            )
            assert not await agent.loop.resync()
            release.set()
            await servers.reaches(a, "SHUTOFF")
            assert await agent.loop.resync()
