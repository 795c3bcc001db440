"""A running guest's disk frozen, and what it wrote since joined to the frozen copy
(``drivers/qemu/layers.py``, a mild relocation's driver side), on a real TCG guest.

The guest writes a file on its boot disk after the freeze, while it runs; stopped, its
changes are exported and joined to the frozen copy: a guest booted from the joined
disk finds the file, one booted from the frozen copy alone does not have it. The
guest's own disk is one piece again, and starts with the file too.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from qemu_support import Console, needs_qemu

from edgefed.drivers.base import PowerState
from edgefed.drivers.qemu import GuestSpec, ImageSource, QemuHypervisor, QemuSettings
from edgefed.guest_image import GuestImage

pytestmark = [needs_qemu, pytest.mark.asyncio(loop_scope="module")]

SETTINGS = QemuSettings(shutdown_timeout=30, maintenance_interval=1.0)
FILE = "/boot/after-freeze"


def info(path: Path) -> dict[str, object]:
    out = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(path)], check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    found: dict[str, object] = json.loads(out)
    return found


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hv(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[QemuHypervisor]:
    hypervisor = QemuHypervisor(
        state_dir=tmp_path_factory.mktemp("qemu-layers") / "state", settings=SETTINGS
    )
    await hypervisor.open()
    yield hypervisor
    for guest_id in hypervisor.guest_ids():
        await hypervisor.destroy(guest_id)
    await hypervisor.close()


async def boot(hv: QemuHypervisor, disk: Path, name: str) -> str:
    guest_id = str(uuid.uuid4())
    await hv.spawn(GuestSpec(id=guest_id, name=name, vcpus=1, ram_mb=128, root_gb=1,
                             image=ImageSource(disk, disk_format="qcow2")))  # fmt: skip
    await Console(hv, guest_id).wait_for("EDGEFED-GUEST ready")
    return guest_id


async def test_what_the_guest_writes_after_the_freeze_joins_the_frozen_copy(
    hv: QemuHypervisor, guest_image: GuestImage, tmp_path: Path
) -> None:
    guest_id = await boot(hv, guest_image.disk, "layered")
    console = Console(hv, guest_id)
    pid = hv.pid(guest_id)

    frozen = await hv.freeze_disk(guest_id)
    assert frozen.path is not None and "backing-filename" not in info(frozen.path)
    assert hv.power_state(guest_id) == PowerState.RUNNING and hv.pid(guest_id) == pid
    await console.type(f"echo joined > {FILE}; sync; echo WROTE-$(cat {FILE})",
                       until="WROTE-joined")  # fmt: skip
    await hv.stop(guest_id)

    changes = await hv.export_changes(guest_id)
    assert changes.path is not None
    assert info(changes.path)["backing-filename"] == "base.qcow2"
    assert changes.path.stat().st_size < 8 << 20  # the writes since, not the disk
    again = await hv.export_changes(guest_id)  # asked again (a restart): the same
    assert again.path is not None and again.path.read_bytes() == changes.path.read_bytes()
    plan = hv.layout.guest(guest_id)
    assert [p.name for p in plan.directory.glob("disk.top-*")] == []  # folded back

    alone = tmp_path / "alone.qcow2"
    subprocess.run(["cp", str(frozen.path), str(alone)], check=True)
    await hv.join_layers(base=frozen.path, changes=changes.path)
    assert "backing-filename" not in info(frozen.path)

    ready = console.count("EDGEFED-GUEST ready")
    await hv.start(guest_id)  # a move undone: the guest runs here again, with the file
    await console.wait_for("EDGEFED-GUEST ready", count=ready + 1)
    await console.type(f"echo FOUND-$(cat {FILE})", until="FOUND-joined")
    await hv.destroy(guest_id)
    for disk, expected in ((frozen.path, True), (alone, False)):
        moved = await boot(hv, disk, "moved")
        copy = Console(hv, moved)
        await copy.type(f"echo FOUND-$(cat {FILE} 2>/dev/null || echo none)",
                        until="FOUND-joined" if expected else "FOUND-none")  # fmt: skip
        await hv.destroy(moved)
