"""A site process with the qemu driver and its own agent, for the real-guest e2e tests,
and the cleanup that removes its guests and host network after it stopped."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgefed.drivers.hostnet import HostNetSettings, SiteNetwork
from edgefed.drivers.qemu import QemuHypervisor
from edgefed.testkit.process import SiteProcess


async def _remove_everything(site: str, state_dir: Path, hostnet_dir: Path) -> None:
    if state_dir.exists():
        hv = QemuHypervisor(state_dir=state_dir)
        await hv.open()
        for guest_id in hv.guest_ids():
            await hv.destroy(guest_id)
        await hv.close()
    await SiteNetwork(site, settings=HostNetSettings(state_dir=hostnet_dir)).teardown()


@contextmanager
def qemu_site(name: str, tag: str, data_dir: Path, *, extra: str = "") -> Iterator[SiteProcess]:
    # Not under pytest's private directory: dnsmasq, running as nobody, must reach it.
    hostnet_dir = Path("/run") / f"edgefed-test-{tag}"
    proc = SiteProcess(
        name=name,
        data_dir=data_dir,
        extra_config=(
            'compute_driver = "qemu"\n'
            f'agent_hostnet_dir = "{hostnet_dir}"\n'
            'agent_accel = "tcg"\n'
            "agent_poll_wait_seconds = 5.0\n" + extra
        ),
    )
    try:
        yield proc.start()
    finally:
        print(proc.log_tail(80))  # shown when the test failed
        proc.stop()  # stops its agent too; guests outlive both, so they go here
        asyncio.run(_remove_everything(name, data_dir / "agent" / "qemu", hostnet_dir))
        shutil.rmtree(hostnet_dir, ignore_errors=True)
