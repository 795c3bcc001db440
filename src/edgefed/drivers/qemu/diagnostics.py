"""``GET /servers/{id}/diagnostics`` (microversion ≥ 2.48) from real counters.

- CPU: each vCPU thread's time from /proc/<pid>/task/<tid>/stat (QMP's
  ``query-cpus-fast`` names the threads), in nanoseconds;
- memory: the flavor's RAM as maximum; used is QEMU's resident memory, capped at the
  maximum (the tiny guest has no balloon driver to say more), in MiB;
- disks: ``query-blockstats`` of each guest-visible device;
- NICs: the tap's counters, seen from the host, so the tap's rx is the guest's tx
  (``/sys/class/net``, or ``ip -n <netns> -s -j link`` when QEMU runs in a namespace);
- uptime: seconds since QEMU started (its start time in /proc/<pid>/stat).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgefed.drivers.qemu.cmdline import NicPlan
from edgefed.drivers.qemu.errors import ToolFailed
from edgefed.drivers.qemu.qmp import QmpClient
from edgefed.drivers.qemu.tools import run_tool

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
COUNTERS = ("bytes", "packets", "errors", "dropped")


def _stat_fields(path: Path) -> list[str]:
    # the command name may hold spaces and parentheses: split after the last ")"
    return path.read_text().rsplit(")", 1)[1].split()


def thread_cpu_ns(pid: int, tid: int) -> int:
    try:
        fields = _stat_fields(Path(f"/proc/{pid}/task/{tid}/stat"))
    except OSError:
        return 0
    return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // CLOCK_TICKS


def uptime_seconds(pid: int) -> int:
    try:
        started = int(_stat_fields(Path(f"/proc/{pid}/stat"))[19]) / CLOCK_TICKS
        now = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return max(0, int(now - started))


def resident_mb(pid: int) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return 0


async def tap_counters(tap: str, netns: str | None) -> dict[str, dict[str, int]]:
    """{"rx": {...}, "tx": {...}} as the host sees the tap; zeros if it is gone."""
    empty = {side: dict.fromkeys(COUNTERS, 0) for side in ("rx", "tx")}
    if netns is None:
        base = Path("/sys/class/net") / tap / "statistics"
        try:
            return {
                side: {c: int((base / f"{side}_{c}").read_text()) for c in COUNTERS}
                for side in ("rx", "tx")
            }
        except (OSError, ValueError):
            return empty
    try:
        said = await run_tool("ip", "-n", netns, "-s", "-j", "link", "show", "dev", tap, timeout=5)
        stats = json.loads(said)[0]["stats64"]
    except (ToolFailed, ValueError, IndexError, KeyError):
        return empty
    return {side: {c: int(stats[side].get(c, 0)) for c in COUNTERS} for side in ("rx", "tx")}


async def collect(
    *,
    qmp: QmpClient,
    pid: int,
    state: str,
    accel: str,
    ram_mb: int,
    nics: Sequence[NicPlan],
    netns: str | None,
) -> dict[str, Any]:
    cpus = await qmp.execute("query-cpus-fast")
    blockstats = await qmp.execute("query-blockstats")
    disks = []
    for entry in blockstats:
        if not entry.get("qdev"):
            continue  # backing files and other internal nodes
        stats = entry["stats"]
        disks.append(
            {
                "read_bytes": stats["rd_bytes"],
                "read_requests": stats["rd_operations"],
                "write_bytes": stats["wr_bytes"],
                "write_requests": stats["wr_operations"],
                "errors_count": stats.get("failed_rd_operations", 0)
                + stats.get("failed_wr_operations", 0)
                + stats.get("failed_flush_operations", 0),
            }
        )
    nic_details = []
    for nic in nics:
        counters = await tap_counters(nic.tap, netns)
        guest_rx, guest_tx = counters["tx"], counters["rx"]
        nic_details.append(
            {
                "mac_address": nic.mac,
                "rx_octets": guest_rx["bytes"],
                "rx_packets": guest_rx["packets"],
                "rx_errors": guest_rx["errors"],
                "rx_drop": guest_rx["dropped"],
                "rx_rate": None,
                "tx_octets": guest_tx["bytes"],
                "tx_packets": guest_tx["packets"],
                "tx_errors": guest_tx["errors"],
                "tx_drop": guest_tx["dropped"],
                "tx_rate": None,
            }
        )
    return {
        "state": state,
        "driver": "qemu",
        "hypervisor": "kvm" if accel == "kvm" else "qemu",
        "hypervisor_os": "linux",
        "uptime": uptime_seconds(pid),
        "config_drive": True,
        "num_cpus": len(cpus),
        "num_disks": len(disks),
        "num_nics": len(nic_details),
        "cpu_details": [
            {
                "id": cpu["cpu-index"],
                "time": thread_cpu_ns(pid, cpu["thread-id"]),
                "utilisation": None,
            }
            for cpu in cpus
        ],
        "memory_details": {"maximum": ram_mb, "used": min(resident_mb(pid), ram_mb)},
        "disk_details": disks,
        "nic_details": nic_details,
    }
