"""The command channel between a qemu site and its host agents, with agents played by
the test over HTTP: each host sees and answers only its own commands; no answer, or a
host gone down, gives the server a fault that says why instead of leaving it in BUILD;
a spawn in flight survives a restart of the site; what agents report of their guests
reaches the servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from inventory_support import (
    AGENT,
    HOSTS,
    FakeClock,
    V,
    agent_headers,
    answer,
    boot,
    poll,
    poll_until,
    qemu_settings,
    reaches,
    server,
    signed_token,
)

from edgefed.store.commands import HostCommands
from edgefed.testkit.inprocess import InProcessSite, run_site
from edgefed.testkit.wait import eventually


@pytest.fixture
async def site(tmp_path: Path, clock: FakeClock) -> AsyncIterator[InProcessSite]:
    async with run_site(qemu_settings(tmp_path), clock=clock) as s:
        yield s


async def test_each_agent_gets_and_answers_only_its_own_host_s_commands(site):
    edge1 = await agent_headers(site, "edge-1")
    edge2 = await agent_headers(site, "edge-2")
    server_id = await boot(site)
    store = HostCommands(site.app.state.ctx.store)

    async def queued() -> bool:
        return bool(await store.open_commands())

    await eventually(queued, within=10, what="the spawn queued")
    first = await asyncio.gather(poll(site, edge1), poll(site, edge2))
    commands = [c for found in first for c in found]
    assert [c["kind"] for c in commands] == ["spawn"]
    owner, other = (edge1, edge2) if first[0] else (edge2, edge1)
    command = commands[0]
    spec = command["payload"]["instance"]
    assert spec["id"] == server_id and spec["image"]["checksum"].startswith("sha256:")
    assert spec["nics"] and spec["nics"][0]["fixed_ips"]

    # The other host can neither see nor answer it, and its try leaves nothing behind.
    before = await HostCommands(site.app.state.ctx.store).get(command["id"])
    assert await poll(site, other) == []
    assert await answer(site, other, command["id"], result={"power_state": 1}) == 404
    assert await answer(site, {"X-Host-Credential": "x.y"}, command["id"], result={}) == 401
    assert await HostCommands(site.app.state.ctx.store).get(command["id"]) == before
    assert (await server(site, server_id))["status"] == "BUILD"

    assert await answer(site, owner, command["id"], result={"power_state": 1}) == 204
    shown = await reaches(site, server_id, "ACTIVE")
    assert shown["OS-EXT-STS:power_state"] == 1
    assert await answer(site, owner, command["id"], result={}) == 404  # answered once


async def test_an_agent_that_does_not_answer_leaves_the_server_in_error_saying_why(tmp_path, clock):
    settings = qemu_settings(tmp_path, agent_spawn_timeout_seconds=0.3)
    async with run_site(settings, clock=clock) as site:
        await agent_headers(site, "edge-1")
        server_id = await boot(site)
        shown = await reaches(site, server_id, "ERROR")
        assert "did not answer the spawn command within 0.3 s" in shown["fault"]["message"]
        assert "edge-1" in shown["fault"]["message"]


async def test_an_agent_error_is_the_server_s_fault(site):
    edge1 = await agent_headers(site, "edge-1")
    server_id = await boot(site)
    command = await poll_until(site, edge1)
    assert await answer(site, edge1, command["id"], error="qemu-img: image is corrupt") == 204
    shown = await reaches(site, server_id, "ERROR")
    assert "qemu-img: image is corrupt" in shown["fault"]["message"]


async def test_a_host_gone_down_fails_its_work_and_stopping_shows_shutoff(tmp_path, clock):
    settings = qemu_settings(tmp_path, host_heartbeat_timeout_seconds=1.0)
    async with run_site(settings, clock=clock) as site:
        edge1 = await agent_headers(site, "edge-1")
        server_id = await boot(site)
        command = await poll_until(site, edge1)
        assert await answer(site, edge1, command["id"], result={"power_state": 1}) == 204
        await reaches(site, server_id, "ACTIVE")

        # A stop is queued; the agent falls silent: the host goes down, the stop fails.
        headers = {"X-Auth-Token": await site.token(), **V}
        r = await site.client.post(
            f"/compute/v2.1/servers/{server_id}/action", json={"os-stop": None}, headers=headers
        )
        assert r.status_code == 202
        clock.advance(5)
        shown = await reaches(site, server_id, "SHUTOFF")
        assert shown["OS-EXT-STS:power_state"] == 0
        r = await site.client.get(
            f"/compute/v2.1/servers/{server_id}/os-instance-actions", headers=headers
        )
        last = r.json()["instanceActions"][0]
        assert last["action"] == "stop"
        assert "host edge-1 is down: its agent sent no heartbeat" in last["message"]


async def test_a_spawn_in_flight_survives_a_restart_of_the_site(tmp_path, clock):
    settings = qemu_settings(tmp_path)
    async with run_site(settings, clock=clock) as site:
        edge1 = await agent_headers(site, "edge-1")
        server_id = await boot(site)
        command = await poll_until(site, edge1)  # sent, not answered: the site stops
    async with run_site(settings, clock=clock) as site:
        assert (await server(site, server_id))["status"] == "BUILD"
        # The agent restarted too: the command it had is sent again, the same one.
        again = await poll_until(site, edge1, restarted=True)
        assert again["id"] == command["id"]
        open_ = await HostCommands(site.app.state.ctx.store).open_commands()
        assert [c.id for c in open_] == [command["id"]]
        assert await answer(site, edge1, again["id"], result={"power_state": 1}) == 204
        await reaches(site, server_id, "ACTIVE")


async def test_what_agents_report_of_their_guests_reaches_the_servers(site):
    edge1 = await agent_headers(site, "edge-1")
    a, b = await boot(site, "a"), await boot(site, "b")
    for _ in range(2):
        command = await poll_until(site, edge1)
        assert await answer(site, edge1, command["id"], result={"power_state": 1}) == 204
    await reaches(site, a, "ACTIVE")
    await reaches(site, b, "ACTIVE")

    # Guest a powered off by itself: its server is SHUTOFF.
    r = await site.client.post(f"{AGENT}/guests", json={"guests": {a: 4}}, headers=edge1)
    assert r.status_code == 204
    await reaches(site, a, "SHUTOFF")
    # After a restart the agent lists what it has: b is gone from the host.
    facts = {"hypervisor_type": "QEMU", "hypervisor_version": 7002022, "accel": "tcg"}
    r = await site.client.post(
        f"{AGENT}/guests", json={"guests": {a: 4}, "full": True, "facts": facts}, headers=edge1
    )
    assert r.status_code == 204
    shown = await reaches(site, b, "ERROR")
    assert "gone from host edge-1" in shown["fault"]["message"]
    assert (await server(site, a))["status"] == "SHUTOFF"
    # Another host cannot report on them.
    edge2 = await agent_headers(site, "edge-2")
    r = await site.client.post(f"{AGENT}/guests", json={"guests": {a: 1}}, headers=edge2)
    assert r.status_code == 204
    assert (await server(site, a))["status"] == "SHUTOFF"


async def test_a_host_gets_the_data_of_the_images_its_servers_boot_only(site):
    edge1 = await agent_headers(site, "edge-1")
    edge2 = await agent_headers(site, "edge-2")
    await boot(site)
    command = await poll_until(site, edge1)
    image = command["payload"]["instance"]["image"]
    r = await site.client.get(f"{AGENT}/images/{image['id']}", headers=edge1)
    assert r.status_code == 200 and r.content == b"qcow2 stand-in" * 64
    assert f"sha256:{r.headers['x-image-sha256']}" == image["checksum"]
    r = await site.client.get(f"{AGENT}/images/{image['id']}", headers=edge2)
    assert r.status_code == 404
    r = await site.client.get(f"{AGENT}/images/{image['id']}", headers={"X-Host-Credential": "a.b"})
    assert r.status_code == 401


async def test_a_guest_deleted_while_its_agent_was_away_is_destroyed_when_it_returns(
    tmp_path, clock
):
    settings = qemu_settings(tmp_path, host_heartbeat_timeout_seconds=1.0)
    async with run_site(settings, clock=clock) as site:
        edge1 = await agent_headers(site, "edge-1")
        server_id = await boot(site)
        command = await poll_until(site, edge1)
        assert await answer(site, edge1, command["id"], result={"power_state": 1}) == 204
        await reaches(site, server_id, "ACTIVE")

        # The agent falls silent; the host goes down; the server is deleted anyway.
        clock.advance(5)

        async def down() -> bool:
            r = await site.client.get(
                f"{HOSTS}/edge-1", headers={"X-Auth-Token": signed_token(site)}
            )
            return bool(r.json()["host"]["availability"] == "down")

        await eventually(down, within=10, what="edge-1 down")
        headers = {"X-Auth-Token": await site.token(), **V}
        r = await site.client.delete(f"/compute/v2.1/servers/{server_id}", headers=headers)
        assert r.status_code == 204

        async def gone() -> bool:
            r = await site.client.get(f"/compute/v2.1/servers/{server_id}", headers=headers)
            return r.status_code == 404

        await eventually(gone, within=10, what="the server deleted")

        # The agent comes back and lists its guests: the site has it destroyed.
        r = await site.client.post(f"{AGENT}/heartbeat", json={}, headers=edge1)
        assert r.status_code == 200
        r = await site.client.post(
            f"{AGENT}/guests", json={"guests": {server_id: 1}, "full": True}, headers=edge1
        )
        assert r.status_code == 204
        command = await poll_until(site, edge1)
        assert (command["kind"], command["server_id"]) == ("destroy", server_id)
        assert await answer(site, edge1, command["id"], result={}) == 204


async def test_a_delete_during_the_build_drops_the_spawn_no_agent_took(site):
    edge1 = await agent_headers(site, "edge-1")
    server_id = await boot(site)
    store = HostCommands(site.app.state.ctx.store)

    async def queued() -> bool:
        return bool(await store.open_commands())

    await eventually(queued, within=10, what="the spawn queued")
    spawn = (await store.open_commands())[0]
    headers = {"X-Auth-Token": await site.token(), **V}
    r = await site.client.delete(f"/compute/v2.1/servers/{server_id}", headers=headers)
    assert r.status_code == 204

    async def dropped() -> bool:
        found = await store.get(spawn.id)
        return found is not None and found.error == "superseded by a destroy"

    await eventually(dropped, within=10, what="the spawn dropped")
    # The agent is sent the destroy only: the spawn it never took is not run at all.
    command = await poll_until(site, edge1)
    assert command["kind"] == "destroy"
    assert await answer(site, edge1, command["id"], result={}) == 204
    assert await poll(site, edge1) == []


async def test_an_agent_whose_host_booted_learns_which_of_its_guests_to_resume(tmp_path, clock):
    async with run_site(qemu_settings(tmp_path), clock=clock) as site:
        edge1 = await agent_headers(site, "edge-1")
        a, b = await boot(site, "a"), await boot(site, "b")
        for _ in range(2):
            command = await poll_until(site, edge1)
            assert await answer(site, edge1, command["id"], result={"power_state": 1}) == 204
        await reaches(site, a, "ACTIVE")
        await reaches(site, b, "ACTIVE")
        r = await site.client.post(f"{AGENT}/guests", json={"guests": {b: 4}}, headers=edge1)
        assert r.status_code == 204
        await reaches(site, b, "SHUTOFF")

        # Only the ACTIVE one is expected running, and only by its own host.
        edge2 = await agent_headers(site, "edge-2")
        r = await site.client.get(f"{AGENT}/guests", headers=edge1)
        assert r.status_code == 200
        assert r.json() == {"resume_on_host_boot": True, "running": [a]}
        r = await site.client.get(f"{AGENT}/guests", headers=edge2)
        assert r.json() == {"resume_on_host_boot": True, "running": []}
        r = await site.client.get(f"{AGENT}/guests", headers={"X-Host-Credential": "a.b"})
        assert r.status_code == 401


async def test_resume_guests_on_host_boot_off_names_no_guest(tmp_path, clock):
    settings = qemu_settings(tmp_path, resume_guests_on_host_boot=False)
    async with run_site(settings, clock=clock) as site:
        edge1 = await agent_headers(site, "edge-1")
        a = await boot(site, "a")
        command = await poll_until(site, edge1)
        assert await answer(site, edge1, command["id"], result={"power_state": 1}) == 204
        await reaches(site, a, "ACTIVE")
        r = await site.client.get(f"{AGENT}/guests", headers=edge1)
        assert r.json() == {"resume_on_host_boot": False, "running": []}
