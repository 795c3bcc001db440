"""A host that cannot read the site's volume files (a host on another machine) asks the
site for an NBD export of a volume its server holds: the site answers one made for that
attachment alone, to that host alone, and stops it at the detach. Agents are played by
the test over HTTP; the export is a real qemu-storage-daemon read and written by a real
qemu-io on loopback."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from inventory_support import (
    AGENT,
    FakeClock,
    V,
    agent_headers,
    answer,
    boot,
    command_for,
    qemu_settings,
    reaches,
)

from edgefed.services.volume.state import VolumeState
from edgefed.testkit.inprocess import InProcessSite, run_site
from edgefed.testkit.nbd import qemu_io
from edgefed.testkit.wait import eventually

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-storage-daemon") is None or shutil.which("qemu-io") is None,
    reason="needs qemu-storage-daemon and qemu-io",
)


@pytest.fixture
async def site(tmp_path: Path, clock: FakeClock) -> AsyncIterator[InProcessSite]:
    settings = qemu_settings(tmp_path, volume_export_host="127.0.0.1")
    async with run_site(settings, clock=clock) as s:
        try:
            yield s
        finally:  # exports outlive their site by design: a test removes its own
            await s.app.state.ctx.slots.require(VolumeState).exports.close_all()


async def test_a_host_that_cannot_read_a_volume_gets_an_export_for_its_attachment_alone(
    site: InProcessSite, tmp_path: Path
) -> None:
    edge1 = await agent_headers(site, "edge-1")
    edge2 = await agent_headers(site, "edge-2")
    server_id = await boot(site)
    owner, spawn = await command_for(site, [edge1, edge2])
    other = edge2 if owner is edge1 else edge1
    assert await answer(site, owner, spawn["id"], result={"power_state": 1}) == 204
    await reaches(site, server_id, "ACTIVE")

    user = {"X-Auth-Token": await site.token()}
    r = await site.client.post("/volume/v3/volumes", json={"volume": {"size": 1}}, headers=user)
    assert r.status_code == 202, r.text
    volume_id = r.json()["volume"]["id"]
    attaching = asyncio.create_task(
        site.client.post(
            f"/compute/v2.1/servers/{server_id}/os-volume_attachments",
            json={"volumeAttachment": {"volumeId": volume_id}},
            headers={**user, **V},
        )
    )
    headers, plug = await command_for(site, [owner])
    assert plug["kind"] == "attach_volume" and plug["payload"]["volume"]["nbd"] is None

    def ask(headers: dict[str, str], server: str = server_id) -> Any:
        return site.client.post(f"{AGENT}/volumes/{volume_id}/export", json={"server_id": server},
                                headers=headers)  # fmt: skip

    # Another host, an unknown server, no credential: refused, and no export made.
    exports = site.app.state.ctx.slots.require(VolumeState).exports
    assert (await ask(other)).status_code == 404
    refused = await ask(owner, server="no-such-server")
    assert refused.status_code == 404 and "no-such-server" in refused.text
    assert (await ask({"X-Host-Credential": "a.b"})).status_code == 401
    assert exports.exported() == []

    r = await ask(owner)
    assert r.status_code == 200, r.text
    nbd = r.json()["nbd"]
    assert sorted(nbd) == ["export", "host", "port", "tls_psk_identity", "tls_psk_key"]
    assert nbd["host"] == "127.0.0.1" and len(nbd["tls_psk_key"]) == 64
    again = await ask(owner)  # a hypervisor that plugs it again (a restart) gets the same
    assert again.json()["nbd"] == nbd and len(exports.exported()) == 1

    wrote = qemu_io(nbd, tmp_path, "write -P 0x5a 0 64k", "read -P 0x5a 0 64k")
    assert wrote.returncode == 0 and "Pattern verification failed" not in wrote.stdout, wrote
    volume_file = site.settings.data_dir / "volumes" / f"{volume_id}.raw"
    assert volume_file.read_bytes()[:65536] == b"Z" * 65536  # on the site's disk
    wrong = qemu_io(nbd, tmp_path, "read 0 4k", key="00" * 32)
    assert wrong.returncode != 0 or "read 4096/4096" not in wrong.stdout

    assert await answer(site, owner, plug["id"], result={"power_state": 1}) == 204
    attached = await attaching
    assert attached.status_code == 200, attached.text

    detaching = asyncio.create_task(
        site.client.delete(
            f"/compute/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}",
            headers={**user, **V},
        )
    )
    headers, unplug = await command_for(site, [owner])
    assert unplug["kind"] == "detach_volume"
    assert await answer(site, owner, unplug["id"], result={"power_state": 1}) == 204
    assert (await detaching).status_code == 202

    async def released() -> bool:
        r = await site.client.get(f"/volume/v3/volumes/{volume_id}", headers=user)
        return bool(r.json()["volume"]["status"] == "available")

    await eventually(released, within=10, what="the volume available again")
    assert exports.exported() == []  # the grant went with the attachment
    after = qemu_io(nbd, tmp_path, "read 0 4k")
    assert after.returncode != 0
    assert (await ask(owner)).status_code == 404  # nothing of it is left to export
