"""KVM or TCG, and what ``openstack hypervisor show`` says about this host.

``/dev/kvm`` existing proves nothing: on a nested host without usable virtualization
(this project's machines) QEMU aborts on an MSR it cannot set, or the guest runs at
about a microsecond an instruction. So the probe boots a 64 KiB firmware
(``firmware/probe.S``, shipped with its build ``probe.bin``) under ``-accel kvm``: it
goes to long mode, touches 4 MiB and loops, printing R, L, M, C on COM1, then exits
through isa-debug-exit with status 3. KVM is usable only if C arrives and QEMU exits
with 3 within the deadline (0.5 s; a working KVM needs ~0.1 s, all of it QEMU's
start-up). Anything else means TCG, with the reason kept.

The answer is cached per host boot in the state directory (``accel.json``): it is
reused while the boot id, the QEMU binary and ``/dev/kvm`` are the same, so an agent
restart decides in microseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from edgefed.drivers.qemu.errors import ToolFailed
from edgefed.drivers.qemu.tools import run_tool

FIRMWARE = Path(__file__).resolve().parent / "firmware" / "probe.bin"
STAGES = "RLMC"
DEBUG_EXIT_STATUS = 3  # isa-debug-exit: (value << 1) | 1 for the 1 the firmware writes
CACHE_FILE = "accel.json"
Accel = Literal["kvm", "tcg"]


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One run of the probe firmware."""

    accel: str
    usable: bool
    reason: str
    stages_ms: dict[str, float] = field(default_factory=dict)
    took_ms: float = 0.0
    exit_status: int | None = None


@dataclass(frozen=True, slots=True)
class HostFacts:
    """The hypervisor as Nova's ``os-hypervisors`` shows it, and the accelerator chosen."""

    hypervisor_type: str
    hypervisor_version: int
    qemu_version: str
    cpu_model: str
    cpu_vendor: str
    cpu_arch: str
    cpu_cores: int
    accel: Accel
    probe: ProbeResult
    decided_in_ms: float
    cached: bool

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


async def run_probe(
    *,
    qemu: str,
    accel: str,
    cpu: str,
    deadline: float,
    firmware: Path = FIRMWARE,
    device: Path = Path("/dev/kvm"),
) -> ProbeResult:
    """Boot the probe firmware under ``accel``; whether it finished within ``deadline``."""
    if accel == "kvm":
        if not device.exists():
            return ProbeResult(accel, False, f"no {device}")
        if not os.access(device, os.R_OK | os.W_OK):
            return ProbeResult(accel, False, f"{device} is not readable and writable")
    started = time.monotonic()
    argv = [
        qemu, "-accel", accel, "-cpu", cpu, "-machine", "pc", "-nodefaults", "-no-user-config",
        "-display", "none", "-m", "16", "-bios", str(firmware),
        "-device", "isa-debug-exit,iobase=0xf4,iosize=1", "-serial", "stdio",
    ]  # fmt: skip
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError:
        return ProbeResult(accel, False, f"{qemu} is not installed")
    assert process.stdout is not None and process.stderr is not None
    stages: dict[str, float] = {}
    reason = ""
    try:
        while "C" not in stages:
            left = deadline - (time.monotonic() - started)
            if left <= 0:
                reason = f"too slow: stages {''.join(stages) or 'none'} of {STAGES} in {deadline} s"
                break
            try:
                chunk = await asyncio.wait_for(process.stdout.read(64), left)
            except TimeoutError:
                continue
            if not chunk:
                break
            for char in chunk.decode(errors="replace"):
                if char in STAGES and char not in stages:
                    stages[char] = round((time.monotonic() - started) * 1000, 1)
        if "C" in stages:
            left = max(0.05, deadline - (time.monotonic() - started))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), left)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        await process.wait()
    errors = (await process.stderr.read()).decode(errors="replace").strip()
    took = round((time.monotonic() - started) * 1000, 1)
    usable = "C" in stages and process.returncode == DEBUG_EXIT_STATUS
    if not usable and not reason:
        lines = errors.splitlines()
        reason = lines[-1][:300] if lines else f"QEMU exited with status {process.returncode}"
    return ProbeResult(accel, usable, reason, stages, took, process.returncode)


def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, str, int]:
    """(model name, vendor, processors) from /proc/cpuinfo."""
    model = vendor = ""
    processors = 0
    with contextlib.suppress(OSError):
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            key, value = key.strip(), value.strip()
            if key == "processor":
                processors += 1
            elif key == "model name" and not model:
                model = value
            elif key == "vendor_id" and not vendor:
                vendor = value
    return model or platform.processor() or "unknown", vendor, processors or (os.cpu_count() or 1)


def nova_version(version: str) -> int:
    """Nova's integer encoding of a version: major * 1,000,000 + minor * 1,000 + micro."""
    parts = [int(part) for part in version.split(".")[:3]]
    parts += [0] * (3 - len(parts))
    return parts[0] * 1_000_000 + parts[1] * 1_000 + parts[2]


async def qemu_version(qemu: str) -> str:
    said = await run_tool(qemu, "--version", timeout=10)
    found = re.search(r"version (\d+\.\d+(?:\.\d+)?)", said)
    if found is None:
        raise ToolFailed(f"cannot read a version in {qemu} --version: {said[:200]!r}")
    return found.group(1)


def _cache_key(qemu: str) -> str:
    """What must not change for a cached answer to hold: this boot, the binary, /dev/kvm."""
    parts = []
    with contextlib.suppress(OSError):
        parts.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
    binary = shutil.which(qemu) or qemu
    with contextlib.suppress(OSError):
        stat = os.stat(binary)
        parts.append(f"{binary}:{stat.st_size}:{stat.st_mtime_ns}")
    try:
        kvm = os.stat("/dev/kvm")
        parts.append(f"kvm:{kvm.st_rdev}")
    except OSError:
        parts.append("kvm:none")
    return "|".join(parts)


async def host_facts(
    *, state_dir: Path, qemu: str, forced: Accel | None = None, deadline: float = 0.5
) -> HostFacts:
    """Decide the accelerator (probe, or the cached answer) and gather the host's facts."""
    started = time.monotonic()
    key = _cache_key(qemu)
    cache = state_dir / CACHE_FILE
    cached: dict[str, Any] | None = None
    with contextlib.suppress(OSError, ValueError):
        cached = json.loads(cache.read_text())
    model, vendor, cores = cpu_info()
    if cached is not None and cached.get("key") == key and forced is None:
        probe = ProbeResult(**cached["probe"])
        version = str(cached["qemu_version"])
        from_cache = True
    else:
        version = await qemu_version(qemu)
        if forced is not None:
            probe = ProbeResult(forced, True, "chosen by the settings, not probed")
        else:
            probe = await run_probe(qemu=qemu, accel="kvm", cpu="host", deadline=deadline)
            record = {"key": key, "qemu_version": version, "probe": asdict(probe)}
            partial = cache.with_suffix(".partial")
            partial.write_text(json.dumps(record, indent=1) + "\n")
            partial.replace(cache)
        from_cache = False
    if forced is not None:
        accel: Accel = forced
    else:
        accel = "kvm" if probe.accel == "kvm" and probe.usable else "tcg"
    return HostFacts(
        hypervisor_type="QEMU",
        hypervisor_version=nova_version(version),
        qemu_version=version,
        cpu_model=model,
        cpu_vendor=vendor,
        cpu_arch=platform.machine(),
        cpu_cores=cores,
        accel=accel,
        probe=probe,
        decided_in_ms=round((time.monotonic() - started) * 1000, 2),
        cached=from_cache,
    )
