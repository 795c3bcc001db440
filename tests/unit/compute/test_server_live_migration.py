"""Live migration (``os-migrateLive``) on the fake driver: the body as Nova reads it per
microversion, its refusals (400, 409, 403) that change nothing, a move to the other
host (chosen or named) that keeps the server ACTIVE, a failed move that leaves it
ACTIVE on its host with the instance action saying why, a move cut by a restart of
the site that the next start takes up, the destination's network plan, and a server
with a volume: moved, the volume's export granted to the destination while the move
runs only, its attachment naming the new host after."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compute_testkit import (
    V,
    boot,
    fake,
    make_image,
    new_volume,
    server_record,
    two_host_settings,
    volume,
    wait_for,
)

from edgefed.drivers.agent_network import host_plan
from edgefed.drivers.base import InstanceSpec
from edgefed.drivers.fake import LIVE_FAIL_MARKER
from edgefed.drivers.hostnet import SitePlan
from edgefed.services.compute.state import ComputeState
from edgefed.services.inventory.agent_channel import export_grantee
from edgefed.testkit.inprocess import InProcessSite, run_site
from edgefed.testkit.tokens import forge_token
from edgefed.testkit.wait import eventually

C = "/compute/v2.1"


def admin(site: InProcessSite, version: str = "2.96") -> dict[str, str]:
    return {"X-Auth-Token": forge_token(site.app.state.ctx),
            "OpenStack-API-Version": f"compute {version}"}  # fmt: skip


async def live(
    site: InProcessSite, server_id: str, body: Any, headers: dict[str, str] | None = None
) -> Any:
    return await site.client.post(f"{C}/servers/{server_id}/action",
                                  json={"os-migrateLive": body},
                                  headers=headers or admin(site))  # fmt: skip


async def active_server(site: InProcessSite, name: str = "vm") -> str:
    h = admin(site)
    server_id = str((await boot(site, h, await make_image(site), name=name,
                                networks="none"))["id"])  # fmt: skip
    await wait_for(site, h, server_id, "ACTIVE")
    return server_id


async def test_live_migration_moves_the_running_server_to_the_other_host(
    two_hosts: InProcessSite,
) -> None:
    site = two_hosts
    server_id = await active_server(site)
    first = (await server_record(site, server_id)).host
    r = await live(site, server_id, {"host": None, "block_migration": "auto"})
    assert r.status_code == 202, r.text
    shown = await wait_for(site, admin(site), server_id, "ACTIVE")
    other = "edge-2" if first == "edge-1" else "edge-1"
    assert shown["OS-EXT-SRV-ATTR:host"] == other
    assert shown["OS-EXT-STS:task_state"] is None
    assert shown["OS-EXT-STS:power_state"] == 1
    # Back, to the host named, with the body of an old microversion.
    r = await live(site, server_id, {"host": first, "block_migration": False,
                                     "disk_over_commit": False}, admin(site, "2.1"))  # fmt: skip
    assert r.status_code == 202, r.text
    await wait_for(site, admin(site), server_id, "ACTIVE")
    assert (await server_record(site, server_id)).host == first
    r = await site.client.get(f"{C}/servers/{server_id}/os-instance-actions",
                              headers=admin(site))  # fmt: skip
    actions = [a["action"] for a in r.json()["instanceActions"]]
    assert actions.count("live-migration") == 2


async def test_live_migration_refusals_change_nothing(two_hosts: InProcessSite) -> None:
    site = two_hosts
    server_id = await active_server(site)
    here = (await server_record(site, server_id)).host
    cases: list[tuple[Any, dict[str, str], int, str]] = [
        ({"host": here, "block_migration": "auto"}, admin(site), 400,
         f"Unable to migrate instance ({server_id}) to current host ({here})."),
        ({"host": "edge-9", "block_migration": "auto"}, admin(site), 400,
         "Compute host edge-9 could not be found."),
        ({"block_migration": "auto"}, admin(site), 400, "'host' is a required property"),
        ({"host": None}, admin(site), 400, "'block_migration' is a required property"),
        ({"host": None, "block_migration": "maybe"}, admin(site), 400,
         "is not a valid boolean value"),
        # "auto" and no disk_over_commit are 2.25's; force is 2.30's and needs a host.
        ({"host": None, "block_migration": "auto", "disk_over_commit": False},
         admin(site, "2.1"), 400, "is not a valid boolean value"),
        ({"host": None, "block_migration": True}, admin(site, "2.1"), 400,
         "'disk_over_commit' is a required property"),
        ({"host": None, "block_migration": True, "disk_over_commit": False},
         admin(site, "2.25"), 400, "Additional properties are not allowed"),
        ({"host": None, "block_migration": "auto", "force": True}, admin(site), 400,
         "Can't force to a non-provided destination"),
        ({"host": None, "block_migration": "auto", "force": True}, admin(site, "2.29"), 400,
         "Additional properties are not allowed ('force' was unexpected)"),
        (None, admin(site), 400, "is not of type 'object'"),
    ]  # fmt: skip
    for body, headers, status, message in cases:
        r = await live(site, server_id, body, headers)
        assert r.status_code == status, (body, r.text)
        assert message in r.text, (body, r.text)
    server = await server_record(site, server_id)
    assert (server.host, server.vm_state, server.task_state) == (here, "active", None)

    # A server that is not running is 409, as Nova says it.
    r = await site.client.post(f"{C}/servers/{server_id}/action", json={"os-stop": None},
                               headers=admin(site))  # fmt: skip
    assert r.status_code == 202
    await wait_for(site, admin(site), server_id, "SHUTOFF")
    r = await live(site, server_id, {"host": None, "block_migration": "auto"})
    assert r.status_code == 409, r.text
    assert f"Cannot 'os-migrateLive' instance {server_id} while it is in vm_state stopped" in r.text


async def test_live_migration_by_a_member_is_forbidden(two_hosts: InProcessSite) -> None:
    site = two_hosts
    ctx = site.app.state.ctx
    token = forge_token(ctx, user="u-p", project="p", role="member")
    h = {"X-Auth-Token": token, **V}
    server_id = str((await boot(site, h, await make_image(site), networks="none"))["id"])
    await wait_for(site, h, server_id, "ACTIVE")
    r = await live(site, server_id, {"host": None, "block_migration": "auto"}, h)
    assert r.status_code == 403, r.text
    assert "migrate_live" in r.text


async def test_a_failed_live_migration_leaves_the_server_active_where_it_was(
    two_hosts: InProcessSite,
) -> None:
    site = two_hosts
    server_id = await active_server(site, name=f"vm-{LIVE_FAIL_MARKER}")
    here = (await server_record(site, server_id)).host
    r = await live(site, server_id, {"host": None, "block_migration": "auto"})
    assert r.status_code == 202, r.text
    shown = await wait_for(site, admin(site), server_id, "ACTIVE")
    assert shown["OS-EXT-SRV-ATTR:host"] == here
    assert shown["OS-EXT-STS:task_state"] is None
    r = await site.client.get(f"{C}/servers/{server_id}/os-instance-actions",
                              headers=admin(site))  # fmt: skip
    last = r.json()["instanceActions"][0]
    assert last["action"] == "live-migration"
    assert "live-migration to" in last["message"] and "fault injection" in last["message"]


async def test_a_live_migration_cut_by_a_restart_is_taken_up(
    tmp_path: Path, database_url: str | None
) -> None:
    settings = two_host_settings(tmp_path / "site", database_url)
    async with run_site(settings) as site:
        server_id = await active_server(site)
        here = (await server_record(site, server_id)).host
        fake(site).transition_seconds = 60.0  # the move is under way when the site stops
        r = await live(site, server_id, {"host": None, "block_migration": "auto"})
        assert r.status_code == 202, r.text

        async def recorded() -> bool:
            return "destination" in ((await server_record(site, server_id)).migration or {})

        await eventually(recorded, within=10, what="the move's destination recorded")
    async with run_site(settings) as site:
        shown = await wait_for(site, admin(site), server_id, "ACTIVE")
        assert shown["OS-EXT-SRV-ATTR:host"] == ("edge-2" if here == "edge-1" else "edge-1")
        assert (await server_record(site, server_id)).migration is None


async def test_the_destination_wires_the_ports_of_a_server_arriving(
    two_hosts: InProcessSite,
) -> None:
    """Its agent's network plan has the server's ports while the move runs (the guest's
    QEMU opens its taps there before it arrives), and loses them if it goes back."""
    site = two_hosts
    h = admin(site)
    server_id = str((await boot(site, h, await make_image(site), networks="auto"))["id"])
    await wait_for(site, h, server_id, "ACTIVE")
    servers = site.app.state.ctx.slots.require(ComputeState).servers
    here = (await server_record(site, server_id)).host
    other = "edge-2" if here == "edge-1" else "edge-1"
    store = site.app.state.ctx.store

    def ports(plan: SitePlan) -> set[str]:
        return {p.port_id for p in plan.ports}

    mine = ports(await host_plan(store, str(here)))
    assert mine and ports(await host_plan(store, other)) == set()
    migration = {"kind": "live-migration", "old_host": here, "destination": other}
    await servers.update(server_id, task_state="migrating", migration=migration)
    assert ports(await host_plan(store, other)) == mine
    assert ports(await host_plan(store, str(here))) == mine  # it runs there still
    await servers.update(server_id, task_state=None, migration=None)
    assert ports(await host_plan(store, other)) == set()


async def test_a_server_with_a_volume_moves_and_its_export_is_the_destinations_meanwhile(
    two_hosts: InProcessSite,
) -> None:
    site = two_hosts
    h = admin(site)
    server_id = await active_server(site)
    volume_id = await new_volume(site, h)
    r = await site.client.post(f"{C}/servers/{server_id}/os-volume_attachments",
                               json={"volumeAttachment": {"volumeId": volume_id}},
                               headers=h)  # fmt: skip
    assert r.status_code == 200, r.text
    here = str((await server_record(site, server_id)).host)
    other = "edge-2" if here == "edge-1" else "edge-1"
    assert export_grantee(await server_record(site, server_id), here)
    assert not export_grantee(await server_record(site, server_id), other)

    # While the driver moves the guest, both hosts may have the volume's export (the
    # source's QEMU keeps it open until the switchover); no other host.
    driver = fake(site)
    moving = driver.live_migrate
    granted: dict[str, bool] = {}

    async def watched(spec: InstanceSpec, *, source: str, resume: bool = False) -> Any:
        record = await server_record(site, server_id)
        granted.update({host: export_grantee(record, host) for host in (here, other, "edge-9")})
        assert [v.volume_id for v in spec.volumes] == [volume_id]  # opened there too
        return await moving(spec, source=source, resume=resume)

    driver.live_migrate = watched  # type: ignore[method-assign]
    r = await live(site, server_id, {"host": None, "block_migration": "auto"})
    assert r.status_code == 202, r.text
    shown = await wait_for(site, h, server_id, "ACTIVE")
    assert shown["OS-EXT-SRV-ATTR:host"] == other
    assert granted == {here: True, other: True, "edge-9": False}
    # Moved: the export is the new host's alone, and the attachment names it.
    record = await server_record(site, server_id)
    assert export_grantee(record, other) and not export_grantee(record, here)
    [attachment] = (await volume(site, h, volume_id))["attachments"]
    assert (attachment["server_id"], attachment["host_name"]) == (server_id, other)
    assert shown["os-extended-volumes:volumes_attached"] == [
        {"id": volume_id, "delete_on_termination": False}
    ]
