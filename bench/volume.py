"""Volumes seen from inside a real guest: ``python -m bench volume``.

Each mode attaches a volume to a running guest (the tiny guest, QEMU with the
accelerator the driver's probe picks: TCG on this project's machines) through a real
site and its host agent, times the attach from the request to the guest seeing the
disk and the detach, and runs one I/O suite (``volume_io.SUITE``: sequential and
random reads and writes, with their latency) inside the guest against the same suite
run outside it in the same run, the mode's anchor:

- ``local`` (``bench/volume_local.py``): the volume of the guest's own site, a raw
  file on the same host; anchor: the same I/O on that file from the host.
- ``remote`` (``bench/volume_remote.py``): a volume of another site over NBD, the API
  calls and the NBD data path through the WAN emulator (50 ms RTT, 100 Mbit/s); anchor:
  a plain TCP copy over the same link.

``--mode NAME`` runs one mode only.

Under TCG the guest's figures are bound by the CPU emulation, which the output says.
Figures go to ``bench/out/volume.json``, one key per mode.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import volume_local, volume_remote
from bench.qemu_boot import IMAGE_DIR, RAM_MB
from bench.volume_io import REGION, SUITE, TCG_NOTE, build_volio
from edgefed.drivers.qemu import QemuHypervisor, QemuSettings
from edgefed.guest_image import GuestImage, build_guest_image

Mode = Callable[[dict[str, Any], GuestImage, Path, Path, str], dict[str, Any]]
MODES: dict[str, tuple[Mode, Callable[[dict[str, Any]], str]]] = {
    "local": (volume_local.run, volume_local.render),
    "remote": (volume_remote.run, volume_remote.render),
}
TOOLS = ("qemu-system-x86_64", "qemu-img", "qemu-storage-daemon", "ip", "nft", "dnsmasq", "gcc")


def _host_ready() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)} (make system-deps; gcc builds volio)")
    if os.geteuid() != 0:
        raise RuntimeError("the site's host network needs root")


async def _probe(state: Path) -> tuple[str, str]:
    """The accelerator the driver's probe picks here."""
    hv = QemuHypervisor(state_dir=state, settings=QemuSettings())
    facts = await hv.open()
    await hv.close()
    return facts.accel, facts.probe.reason


def run(settings: dict[str, Any]) -> dict[str, Any]:
    _host_ready()
    image = build_guest_image(IMAGE_DIR)
    scratch = Path(tempfile.mkdtemp(prefix="edgefed-bench-volume-"))
    try:
        volio = build_volio(scratch)
        accel, reason = asyncio.run(_probe(scratch / "probe"))
        results: dict[str, Any] = {"accel": accel, "accel_reason": reason}
        chosen = settings.get("mode") or list(MODES)
        for name, (mode, _) in MODES.items():
            if name not in chosen:
                continue
            (scratch / name).mkdir()
            results[name] = mode(settings, image, volio, scratch / name, accel)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results["settings"] = {
        "starts": int(settings.get("starts", 3)),
        "ram_mb": RAM_MB,
        "region_mib": REGION >> 20,
        "suite": [t.name for t in SUITE],
    }
    results["goal"] = {"attach_guest_seen_s_below": volume_local.ATTACH_GOAL_S}
    return results


def render(results: dict[str, Any]) -> str:
    lines = [
        f"volume: the tiny guest, {results['settings']['ram_mb']} MiB, 1 vCPU, accel "
        f"{results['accel']} ({results['accel_reason']})",
    ]
    for name, (_, show) in MODES.items():
        if name in results:
            lines.append(show(results[name]))
    if results["accel"] == "tcg":
        lines.append(f"note: {TCG_NOTE}")
    return "\n".join(lines)
