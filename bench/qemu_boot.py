"""How long a real guest takes to boot through the driver, against bare QEMU.

The anchor is the same tiny guest (``edgefed.guest_image``) launched by hand: one
``qemu-system-x86_64`` command line with the same accelerator, CPU model, memory,
devices and disks as the driver's (a qcow2 overlay on the same base, the same config
drive, made beforehand as a person would), its serial console written to a file. The
driver's side is ``QemuHypervisor.spawn``: the base image's check (its cache filled
beforehand, as after the image's first boot), overlay, config drive, a daemonized
QEMU with its QMP monitor, the console through a socket and its log. Both consoles
are files, read the same way (every 10 ms), and each boot is timed from the call that
starts it to

- the first console line (the boot loader's banner, or the kernel's first message),
- ``EDGEFED-GUEST userspace``: /etc/rc's first line, the guest reached userspace,
- the user-data marker: the user data from the config drive ran.

The anchor and the driver's guest boot side by side, ``--starts`` pairs, the one or the
other started first in turn: on this shared machine a boot's time varies by seconds
with the work of others, far more than the driver's own fraction of a second, and a
pair sees the same load. Overhead and ratio are the median over the pairs of the
driver's time minus (over) the anchor's; every boot is in the JSON. Both boot modes
are measured: the whole-disk image (its boot loader reads the kernel through the
BIOS) and direct kernel boot (the image's ``kernel_id``/``ramdisk_id``).

Then ten guests are spawned at once on one hypervisor, in a child process that holds
it and nothing else, so that its resident memory is the driver's: the time until all
ten show their user-data marker, the child's RSS before and with the ten, and each
QEMU's RSS. Every QEMU and process started here is removed at the end, also on error
(the child's guests by adoption, as an agent restarted after a crash would).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from asyncio.subprocess import DEVNULL
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgefed.drivers.qemu import GuestSpec, ImageSource, QemuHypervisor, QemuSettings
from edgefed.drivers.qemu.cmdline import CPU_MODEL
from edgefed.drivers.qemu.configdrive import build_config_drive
from edgefed.drivers.qemu.pvh import pvh_kernel
from edgefed.drivers.qemu.tools import run_tool
from edgefed.guest_image import GuestImage, build_guest_image

REPO = Path(__file__).resolve().parents[1]
IMAGE_DIR = REPO / ".cache" / "guest-image"
USERSPACE = b"EDGEFED-GUEST userspace"
MARKER = b"USERDATA-MARKER"
USER_DATA = b"#!/bin/sh\necho USERDATA-MARKER-$(hostname)\n"
RAM_MB = 128
POLL_S = 0.01
BOOT_DEADLINE_S = 180.0
FLEET = 10
FLEET_DEADLINE_S = 900.0
OVERHEAD_RATIO_GOAL = 1.10
OVERHEAD_MS_GOAL = 150.0
USERSPACE_GOAL_S = 3.0


def spec_for(image: GuestImage, mode: str, name: str) -> GuestSpec:
    kernel: dict[str, Any] = {}
    if mode == "kernel":
        kernel = {
            "kernel": ImageSource(image.vmlinuz),
            "ramdisk": ImageSource(image.initrd),
            "kernel_cmdline": image.kernel_cmdline,
        }
    return GuestSpec(
        id=str(uuid.uuid4()),
        name=name,
        vcpus=1,
        ram_mb=RAM_MB,
        root_gb=1,
        image=ImageSource(image.disk, disk_format="qcow2"),
        user_data=USER_DATA,
        **kernel,
    )


async def watch(log: Path, started: float, deadline: float = BOOT_DEADLINE_S) -> dict[str, float]:
    """Seconds from ``started`` to the first line, userspace and the user-data marker."""
    seen: dict[str, float] = {}
    while time.monotonic() - started < deadline:
        try:
            data = log.read_bytes()
        except FileNotFoundError:
            data = b""
        now = time.monotonic() - started
        for key, needle in (("first_line", b"\n"), ("userspace", USERSPACE), ("marker", MARKER)):
            if key not in seen and needle in data:
                seen[key] = now
        if len(seen) == 3:
            return seen
        await asyncio.sleep(POLL_S)
    raise TimeoutError(f"{log}: only {sorted(seen)} within {deadline:.0f} s")


def anchor_argv(
    accel: str,
    image: GuestImage,
    mode: str,
    root: Path,
    drive: Path,
    log: Path,
    kernel: Path | None = None,
) -> list[str]:
    """The guest as a person would start it: the driver's machine, none of its plumbing;
    ``kernel``: the kernel file the driver boots (its PVH ELF, ``drivers/qemu/pvh.py``)."""
    argv = [
        "qemu-system-x86_64",
        "-machine", "pc", "-accel", accel, "-cpu", CPU_MODEL[accel],
        "-smp", "1", "-m", str(RAM_MB),
        "-nodefaults", "-no-user-config", "-display", "none",
        "-chardev", f"file,id=serial0,path={log}", "-serial", "chardev:serial0",
        "-device", "virtio-rng-pci",
        "-drive", f"file={root},format=qcow2,if=none,id=root",
        "-device", "virtio-blk-pci,drive=root,bootindex=1",
        "-drive", f"file={drive},format=raw,if=none,id=config,readonly=on",
        "-device", "virtio-blk-pci,drive=config",
    ]  # fmt: skip
    if mode == "kernel":
        argv += ["-kernel", str(kernel or image.vmlinuz), "-initrd", str(image.initrd)]
        argv += ["-append", image.kernel_cmdline]
    return argv


async def prepare_anchor(
    accel: str, image: GuestImage, mode: str, scratch: Path
) -> tuple[list[str], Path]:
    """The anchor's disks, made before its clock starts; its argv and console log."""
    spec = spec_for(image, mode, "anchor")
    root, drive, log = scratch / "root.qcow2", scratch / "config.iso", scratch / "console.log"
    for path in (root, drive, log):
        path.unlink(missing_ok=True)
    await run_tool(
        "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(image.disk),
        str(root), "1G", timeout=60,
    )  # fmt: skip
    build_config_drive(drive, spec.metadata())
    # The same kernel file as the driver's: the anchor is the same guest, by hand.
    kernel = None
    if mode == "kernel":
        copy = scratch / "vmlinuz"
        if not copy.exists():
            shutil.copyfile(image.vmlinuz, copy)
        kernel = await asyncio.to_thread(pvh_kernel, copy)
    return anchor_argv(accel, image, mode, root, drive, log, kernel), log


def process_started(pid: int, since: float) -> float:
    """Seconds from ``since`` (CLOCK_BOOTTIME) to the process's start, to 1/CLK_TCK."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[19]) / os.sysconf("SC_CLK_TCK") - since


async def anchor_boot(argv: list[str], log: Path) -> dict[str, float]:
    started, since = time.monotonic(), time.clock_gettime(time.CLOCK_BOOTTIME)
    # an asyncio child like the driver's: mixing subprocess.Popen with asyncio's child
    # watcher lets one reap the other's children
    qemu = await asyncio.create_subprocess_exec(
        *argv, stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL
    )
    try:
        exec_s = process_started(qemu.pid, since)
        return {**await watch(log, started), "qemu_started": exec_s}
    finally:
        qemu.kill()
        await qemu.wait()


async def driver_boot(hv: QemuHypervisor, image: GuestImage, mode: str) -> dict[str, float]:
    spec = spec_for(image, mode, "driver")
    started, since = time.monotonic(), time.clock_gettime(time.CLOCK_BOOTTIME)
    try:
        await hv.spawn(spec)
        spawned = time.monotonic() - started
        pid = hv.pid(spec.id)
        assert pid is not None
        exec_s = process_started(pid, since)  # the daemon forks early in QEMU's start
        seen = await watch(hv.layout.guest(spec.id).console_log, started)
        return {**seen, "spawn_call": spawned, "qemu_started": exec_s}
    finally:
        await hv.destroy(spec.id)


async def paired_boot(
    hv: QemuHypervisor, accel: str, image: GuestImage, mode: str, scratch: Path, *, first: str
) -> tuple[dict[str, float], dict[str, float]]:
    """The anchor and the driver's guest booting side by side; (anchor, driver)."""
    argv, log = await prepare_anchor(accel, image, mode, scratch)
    if first == "anchor":
        return await asyncio.gather(anchor_boot(argv, log), driver_boot(hv, image, mode))
    driver, anchor = await asyncio.gather(driver_boot(hv, image, mode), anchor_boot(argv, log))
    return anchor, driver


def _best(boots: list[dict[str, float]], key: str) -> float:
    return round(min(boot[key] for boot in boots), 3)


def summary(anchor: list[dict[str, float]], driver: list[dict[str, float]]) -> dict[str, Any]:
    """Per milestone: the median of the pairs' differences and ratios, and the best boots."""
    side: dict[str, Any] = {}
    for key in ("qemu_started", "first_line", "userspace", "marker"):
        pairs = list(zip(anchor, driver, strict=True))
        side[key] = {
            "overhead_ms": round(statistics.median(d[key] - a[key] for a, d in pairs) * 1000),
            "ratio": round(statistics.median(d[key] / max(a[key], 0.01) for a, d in pairs), 3),
            "anchor_median_s": round(statistics.median(a[key] for a in anchor), 3),
            "driver_median_s": round(statistics.median(d[key] for d in driver), 3),
            "anchor_best_s": _best(anchor, key),
            "driver_best_s": _best(driver, key),
        }
    marker = side["marker"]
    side["spawn_call_s"] = round(statistics.median(d["spawn_call"] for d in driver), 3)
    side["boots"] = {"anchor": anchor, "driver": driver}
    side["verdict"] = (
        "PASS"
        if marker["ratio"] <= OVERHEAD_RATIO_GOAL and marker["overhead_ms"] <= OVERHEAD_MS_GOAL
        else "MISS"
    )
    best = min(side["userspace"]["anchor_best_s"], side["userspace"]["driver_best_s"])
    side["userspace_verdict"] = "PASS" if best < USERSPACE_GOAL_S else "MISS"
    return side


async def compare(settings: dict[str, Any], image: GuestImage, scratch: Path) -> dict[str, Any]:
    starts = int(settings.get("starts", 3))
    hv = QemuHypervisor(state_dir=scratch / "state", settings=QemuSettings())
    facts = await hv.open()
    results: dict[str, Any] = {"accel": facts.accel, "accel_reason": facts.probe.reason}
    try:
        filled = time.monotonic()  # the base cache as it is after an image's first boot
        await hv.images.ensure(image.disk, declared_format="qcow2")
        for path in (image.vmlinuz, image.initrd):
            await hv.images.ensure(path)
        results["image_cache_fill_s"] = round(time.monotonic() - filled, 3)
        for mode in ("disk", "kernel"):
            anchor: list[dict[str, float]] = []
            driver: list[dict[str, float]] = []
            for i in range(starts):
                first = ("anchor", "driver")[i % 2]
                print(f"bench qemu_boot: {mode} boots {i + 1}/{starts}, {first} first…", flush=True)
                a, d = await paired_boot(hv, facts.accel, image, mode, scratch, first=first)
                anchor.append(a)
                driver.append(d)
            results[mode] = summary(anchor, driver)
    finally:
        for guest_id in hv.guest_ids():
            await hv.destroy(guest_id)
        await hv.close()
    return results


def proc_kib(pid: int, *names: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in names:
            out[name] = int(value.split()[0])
    return out


async def hold(state: Path, image_dir: Path, count: int, mode: str) -> None:
    """The child: spawn ``count`` guests at once, report, then destroy them when told."""
    image = build_guest_image(image_dir)
    hv = QemuHypervisor(state_dir=state, settings=QemuSettings())
    await hv.open()
    await hv.images.ensure(image.disk, declared_format="qcow2")
    before = proc_kib(os.getpid(), "VmRSS", "RssAnon")
    specs = [spec_for(image, mode, f"fleet-{i}") for i in range(count)]
    started = time.monotonic()
    try:
        await asyncio.gather(*(hv.spawn(spec) for spec in specs))
        spawned = time.monotonic() - started
        seen = await asyncio.gather(
            *(watch(hv.layout.guest(s.id).console_log, started, FLEET_DEADLINE_S) for s in specs)
        )
        report = {
            "spawned_s": round(spawned, 3),
            "markers_s": sorted(round(s["marker"], 3) for s in seen),
            "userspace_s": sorted(round(s["userspace"], 3) for s in seen),
            "rss_kib_before": before,
            "rss_kib_with_guests": proc_kib(os.getpid(), "VmRSS", "RssAnon"),
            "qemu_pids": [hv.pid(s.id) for s in specs],
        }
        print(json.dumps(report), flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # the parent has read the QEMUs' RSS
    finally:
        for spec in specs:
            await hv.destroy(spec.id)
        await hv.close()


async def _adopt_and_destroy(state: Path) -> None:
    heir = QemuHypervisor(state_dir=state, settings=QemuSettings())
    await heir.adopt()
    for guest_id in heir.guest_ids():
        await heir.destroy(guest_id)
    await heir.close()


def fleet(image: GuestImage, scratch: Path, mode: str = "disk") -> dict[str, Any]:
    state = scratch / "fleet-state"
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.qemu_boot",
            str(state),
            str(image.directory),
            str(FLEET),
            mode,
        ],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        line = child.stdout.readline()
        if not line:
            raise RuntimeError(f"the fleet's child exited ({child.wait()}) without a report")
        report: dict[str, Any] = json.loads(line)
        qemu = [proc_kib(pid, "VmRSS")["VmRSS"] for pid in report.pop("qemu_pids")]
        child.stdin.write("done\n")
        child.stdin.flush()
        child.wait(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if state.exists():
            asyncio.run(_adopt_and_destroy(state))  # whatever the child left running
    markers = report["markers_s"]
    before, after = report["rss_kib_before"], report["rss_kib_with_guests"]
    return {
        "guests": FLEET,
        "mode": mode,
        "spawn_calls_s": report["spawned_s"],
        "all_markers_s": markers[-1],
        "first_marker_s": markers[0],
        "median_marker_s": round(statistics.median(markers), 3),
        "driver_rss_mib_before": round(before["VmRSS"] / 1024, 1),
        "driver_rss_mib_with_guests": round(after["VmRSS"] / 1024, 1),
        "driver_rss_anon_mib_with_guests": round(after["RssAnon"] / 1024, 1),
        "driver_rss_kib_per_guest": round((after["VmRSS"] - before["VmRSS"]) / FLEET),
        "qemu_rss_mib_median": round(statistics.median(qemu) / 1024, 1),
        "qemu_rss_mib_max": round(max(qemu) / 1024, 1),
    }


@contextlib.contextmanager
def qemu_scratch(prefix: str) -> Iterator[tuple[GuestImage, Path]]:
    """The tiny guest image (built once) and a scratch directory named ``prefix``…,
    removed at the end; QEMU must be installed."""
    if shutil.which("qemu-system-x86_64") is None:
        raise RuntimeError("qemu-system-x86_64 is not installed (make system-deps)")
    image = build_guest_image(IMAGE_DIR)
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield image, scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def run(settings: dict[str, Any]) -> dict[str, Any]:
    with qemu_scratch("edgefed-qemu-boot-") as (image, scratch):
        results = asyncio.run(compare(settings, image, scratch))
        print(f"bench qemu_boot: {FLEET} guests at once…", flush=True)
        results["fleet"] = fleet(image, scratch)
    results["settings"] = {"starts": int(settings.get("starts", 3)), "ram_mb": RAM_MB}
    results["image"] = {k: image.manifest[k] for k in ("kernel_package", "kernel_cmdline")}
    results["goal"] = {
        "overhead_ratio_at_most": OVERHEAD_RATIO_GOAL,
        "overhead_ms_at_most": OVERHEAD_MS_GOAL,
        "userspace_s_below": USERSPACE_GOAL_S,
    }
    return results


def render(results: dict[str, Any]) -> str:
    lines = [
        f"qemu_boot: the tiny guest, {results['settings']['ram_mb']} MiB, 1 vCPU, accel "
        f"{results['accel']} ({results['accel_reason']})",
        f"{results['settings']['starts']} pairs of boots side by side, bare QEMU and driver;"
        " overhead and ratio: the median over the pairs",
        f"{'':28}{'bare QEMU':>11}{'driver':>10}{'overhead':>11}{'ratio':>8}   best boots",
    ]
    for mode, title in (("disk", "whole-disk image"), ("kernel", "direct kernel boot")):
        side = results[mode]
        lines.append(f"{title}, medians (spawn() returns after {side['spawn_call_s']:.3f} s)")
        for key, label in (
            ("qemu_started", "QEMU started (its daemon)"),
            ("first_line", "first console line"),
            ("userspace", "userspace"),
            ("marker", "user-data marker"),
        ):
            f = side[key]
            lines.append(
                f"  {label:26}{f['anchor_median_s']:>9.2f} s{f['driver_median_s']:>8.2f} s"
                f"{f['overhead_ms']:>+8d} ms{f['ratio']:>7.2f}×"
                f"   {f['anchor_best_s']:.2f} / {f['driver_best_s']:.2f} s"
            )
        lines.append(
            f"  goal overhead ≤ {(OVERHEAD_RATIO_GOAL - 1) * 100:.0f} % and ≤ "
            f"{OVERHEAD_MS_GOAL:.0f} ms: {side['verdict']}; userspace (best boot) < "
            f"{USERSPACE_GOAL_S:.0f} s: {side['userspace_verdict']}"
        )
    f = results["fleet"]
    lines += [
        f"{f['guests']} guests at once ({f['mode']}): spawn calls done {f['spawn_calls_s']:.2f} s,"
        f" markers first {f['first_marker_s']:.1f} s, median {f['median_marker_s']:.1f} s, "
        f"all {f['all_markers_s']:.1f} s",
        f"driver process RSS {f['driver_rss_mib_before']} MiB idle, "
        f"{f['driver_rss_mib_with_guests']} MiB with {f['guests']} guests "
        f"({f['driver_rss_anon_mib_with_guests']} MiB anon; "
        f"{f['driver_rss_kib_per_guest']} KiB per guest)",
        f"QEMU RSS per guest: median {f['qemu_rss_mib_median']} MiB, "
        f"max {f['qemu_rss_mib_max']} MiB",
        "base image cache fill, disk, kernel and initramfs (an image's first boot only): "
        f"{results['image_cache_fill_s']:.3f} s",
    ]
    return "\n".join(lines)


if __name__ == "__main__":  # the fleet's child: python -m bench.qemu_boot STATE IMAGE_DIR N MODE
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(hold(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
