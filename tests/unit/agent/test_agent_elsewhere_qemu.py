"""A host that reads none of the site's files (a host on another machine) with real QEMU
(TCG here): its agent fetches the image from the site to boot the guest, and reaches a
volume of the site through the NBD export the site makes for that attachment alone; the
guest writes the volume with fsync and the bytes are in the site's volume file; the
detach unplugs it and stops the export.

The site runs in this process; the agent's command loop runs the real ``GuestRunner``
over ``QemuHypervisor``, without a network. Every wait is bounded; every QEMU and export
is removed at the end.
"""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest
from agent_qemu_support import (
    V,
    agent,
    destroy_guests,
    enroll,
    image_and_flavors,
    qemu_site_settings,
    show_server,
)

from edgefed.guest_image import GuestImage
from edgefed.services.volume.state import VolumeState
from edgefed.testkit.inprocess import run_site
from edgefed.testkit.process import pid_alive
from edgefed.testkit.wait import eventually

MARK = b"EDGEFED-VOLUME-FROM-ELSEWHERE"

pytestmark = pytest.mark.skipif(
    any(shutil.which(tool) is None
        for tool in ("qemu-system-x86_64", "qemu-img", "qemu-storage-daemon")),
    reason="needs QEMU and its storage daemon (make system-deps installs them)",
)  # fmt: skip


def volume_writer(serial: str) -> str:
    """User data: once a disk with ``serial`` appears, write MARK to it with fsync."""
    return (
        "#!/bin/sh\n"
        "(for i in $(seq 300); do\n"
        "  for d in /sys/block/vd*; do\n"
        f'    [ "$(cat $d/serial 2>/dev/null)" = "{serial}" ] || continue\n'
        f"    printf '{MARK.decode()}' | dd of=/dev/${{d##*/}} conv=fsync 2>/dev/null "
        f"&& echo 'WROTE-{serial}' && exit 0\n"
        "  done\n"
        "  sleep 1\n"
        "done) > /dev/console 2>&1 &\n"
    )


async def test_a_host_on_another_machine_boots_a_fetched_image_and_writes_a_volume_over_nbd(
    tmp_path: Path, guest_image: GuestImage
) -> None:
    settings = qemu_site_settings(tmp_path / "site", volume_export_host="127.0.0.1")
    state = tmp_path / "qemu"
    pids: list[int] = []
    async with run_site(settings) as site:
        admin = {"X-Auth-Token": await site.token(), **V}
        exports = site.app.state.ctx.slots.require(VolumeState).exports
        cred = await enroll(site, "edge-far")
        image_id = await image_and_flavors(site, admin, guest_image)
        token = {"X-Auth-Token": admin["X-Auth-Token"]}
        r = await site.client.post("/volume/v3/volumes", json={"volume": {"size": 1}},
                                   headers=token)  # fmt: skip
        assert r.status_code == 202, r.text
        volume_id = str(r.json()["volume"]["id"])
        serial = volume_id[:20]

        async def status(server_id: str, wanted: str) -> bool:
            shown = await show_server(site, admin, server_id)
            assert shown["status"] != "ERROR", shown.get("fault")
            return bool(shown["status"] == wanted)

        try:
            async with agent(site, cred, state, "boot-1", site_files=False) as (_, hv):
                body = {
                    "name": "far",
                    "imageRef": image_id,
                    "flavorRef": "t",
                    "networks": "none",
                    "user_data": base64.b64encode(volume_writer(serial).encode()).decode(),
                }
                r = await site.client.post(
                    "/compute/v2.1/servers", json={"server": body}, headers=admin
                )  # fmt: skip
                assert r.status_code == 202, r.text
                server_id = str(r.json()["server"]["id"])
                await eventually(lambda: status(server_id, "ACTIVE"), within=120, what="ACTIVE")
                pid = hv.pid(server_id)
                assert pid is not None
                pids.append(pid)

                r = await site.client.post(
                    f"/compute/v2.1/servers/{server_id}/os-volume_attachments",
                    json={"volumeAttachment": {"volumeId": volume_id}},
                    headers=admin,
                )
                assert r.status_code == 200, r.text
                assert len(exports.exported()) == 1  # plugged over NBD, not from the file
                log = state / "guests" / server_id / "console.log"

                async def wrote() -> bool:
                    return f"WROTE-{serial}" in log.read_text(errors="replace")

                await eventually(wrote, within=180, what="the guest wrote the volume")
                volume_file = settings.data_dir / "volumes" / f"{volume_id}.raw"
                assert volume_file.read_bytes()[: len(MARK)] == MARK  # on the site's disk

                r = await site.client.delete(
                    f"/compute/v2.1/servers/{server_id}/os-volume_attachments/{volume_id}",
                    headers=admin,
                )
                assert r.status_code == 202, r.text

                async def released() -> bool:
                    r = await site.client.get(f"/volume/v3/volumes/{volume_id}", headers=token)
                    return bool(r.json()["volume"]["status"] == "available")

                await eventually(released, within=60, what="the volume detached")
                assert exports.exported() == []  # the grant is gone with the attachment
        finally:
            await exports.close_all()
            await destroy_guests([state], pids)
    assert not [p for p in pids if pid_alive(p)]
