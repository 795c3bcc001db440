"""A volume attached by a host of another site is exported over NBD with TLS, for that
attachment alone: the key in its connection reads and writes the volume's file, any
other key is refused, and the detach stops the export (real qemu-storage-daemon and
qemu-io on loopback)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cinder_kit import admin, delete, post, volume

from edgefed.services.volume.exports import ExportFailed, NbdExports
from edgefed.services.volume.state import VolumeState
from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings
from edgefed.testkit.nbd import qemu_io
from edgefed.testkit.wait import eventually

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-storage-daemon") is None or shutil.which("qemu-io") is None,
    reason="needs qemu-storage-daemon and qemu-io",
)
REMOTE = {"site": "Lisbon", "host": "lisbon-1", "initiator": "edgefed", "mountpoint": "/dev/vdb"}


@pytest.fixture
async def site(tmp_path: Path, database_url: str | None) -> AsyncIterator[InProcessSite]:
    """A site whose exports are reached on loopback (its public name does not resolve)."""
    settings = site_settings(
        tmp_path / "paris", name="Paris", database_url=database_url,
        volume_export_host="127.0.0.1",
    )  # fmt: skip
    async with run_site(settings) as s:
        try:
            yield s
        finally:  # exports outlive their site by design: a test removes its own
            await s.app.state.ctx.slots.require(VolumeState).exports.close_all()


async def test_an_attachment_for_another_site_is_an_nbd_export_of_its_own(
    site: InProcessSite, tmp_path: Path
) -> None:
    h = admin(site)
    vol = await volume(site, h)
    body = {"attachment": {"volume_uuid": vol["id"], "instance_uuid": vol["id"],
                           "connector": REMOTE}}  # fmt: skip
    r = await post(site, h, "attachments", body)
    assert r.status_code == 200, r.text
    attachment = r.json()["attachment"]
    info = attachment["connection_info"]
    assert info["driver_volume_type"] == "nbd"
    data = info["data"]
    assert data["host"] == "127.0.0.1" and data["port"] > 0 and len(data["tls_psk_key"]) == 64

    wrote = qemu_io(data, tmp_path, "write -P 0x5a 0 64k", "read -P 0x5a 0 64k")
    assert wrote.returncode == 0 and "Pattern verification failed" not in wrote.stdout, wrote
    volume_file = site.settings.data_dir / "volumes" / f"{vol['id']}.raw"
    assert volume_file.read_bytes()[:65536] == b"Z" * 65536
    wrong = qemu_io(data, tmp_path, "read 0 4k", key="00" * 32)
    assert wrong.returncode != 0 or "read 4096/4096" not in wrong.stdout

    r = await delete(site, h, f"attachments/{attachment['id']}")
    assert r.status_code == 200, r.text
    after = qemu_io(data, tmp_path, "read 0 4k")
    assert after.returncode != 0  # the grant is gone with the attachment
    exports = site.app.state.ctx.slots.require(VolumeState).exports
    assert attachment["id"] not in exports.exported()


async def test_this_sites_hosts_get_the_file(site: InProcessSite) -> None:
    h = admin(site)
    vol = await volume(site, h)
    local = {**REMOTE, "site": site.settings.name}
    body = {"attachment": {"volume_uuid": vol["id"], "instance_uuid": vol["id"],
                           "connector": local}}  # fmt: skip
    r = await post(site, h, "attachments", body)
    assert r.json()["attachment"]["connection_info"]["driver_volume_type"] == "local"


def free_ports(count: int, low: int = 20100, high: int = 32000) -> range:
    """``count`` consecutive ports free on loopback, below the ephemeral range."""
    for first in range(low, high, count):
        ports = range(first, first + count)
        probes = [socket.socket() for _ in ports]
        try:
            for probe, port in zip(probes, ports, strict=True):
                probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return ports
    raise RuntimeError("no free ports")


async def test_exports_take_the_lowest_free_port_of_a_fixed_range(tmp_path: Path) -> None:
    """One export a port: a port something else listens on is skipped, so is the port of
    an export whose daemon stopped (it starts there again), and a full range says so."""
    ports = free_ports(3)
    exports = NbdExports(tmp_path / "exports", bind_host="127.0.0.1",
                         advertised_host="127.0.0.2", ports=ports)  # fmt: skip
    disk = tmp_path / "vol.raw"
    disk.write_bytes(b"\0" * 65536)
    other = socket.create_server(("127.0.0.1", ports[0]))
    try:
        first = await exports.open(attachment_id="a-1", volume_path=disk, read_only=False)
        assert (first["host"], first["port"]) == ("127.0.0.2", ports[1])
        second = await exports.open(attachment_id="a-2", volume_path=disk, read_only=True)
        assert second["port"] == ports[2]
        pid = int((tmp_path / "exports" / "a-1" / "qsd.pid").read_text())
        os.kill(pid, signal.SIGKILL)  # a crash: the port is free but a-1's to restore

        async def dead() -> bool:  # gone, or a zombie nobody reaped yet
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                return True
            return stat.rsplit(")", 1)[1].split()[0] == "Z"

        await eventually(dead, within=10.0, what="the killed daemon gone")
        with pytest.raises(ExportFailed, match=rf"{ports[0]}-{ports[2]}\) is in use"):
            await exports.open(attachment_id="a-3", volume_path=disk, read_only=False)
        assert exports.exported() == ["a-1", "a-2"]  # nothing of a-3
        await exports.restore(attachment_id="a-1", volume_path=disk, data=first)
        served = qemu_io({**first, "host": "127.0.0.1"}, tmp_path, "read 0 4k")
        assert served.returncode == 0 and "read 4096/4096" in served.stdout, served
    finally:
        other.close()
        await exports.close_all()
    assert exports.exported() == []
