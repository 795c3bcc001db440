"""What this machine has: CPUs, memory, disks, NICs, OS release, read from /proc, /sys
and /etc/os-release (no third-party probe, so the agent runs on a minimal OS).

Every reader takes a ``root`` so tests can point it at a prepared directory tree.
"""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path
from typing import Any

# Block devices that are not disks of the machine.
_VIRTUAL_BLOCK_PREFIXES = ("loop", "ram", "zram", "dm-", "md", "sr", "nbd")


def cpu_count(root: Path) -> int:
    cpuinfo = root / "proc/cpuinfo"
    if cpuinfo.exists():
        count = sum(1 for line in cpuinfo.read_text().splitlines() if line.startswith("processor"))
        if count:
            return count
    return os.cpu_count() or 1


def memory_mb(root: Path) -> int:
    meminfo = root / "proc/meminfo"
    if meminfo.exists():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 0


def disks(root: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    block = root / "sys/block"
    if block.is_dir():
        for dev in sorted(block.iterdir()):
            if dev.name.startswith(_VIRTUAL_BLOCK_PREFIXES):
                continue
            try:
                sectors = int((dev / "size").read_text().strip())
            except (OSError, ValueError):
                continue
            if sectors > 0:
                found.append({"name": dev.name, "size_gb": round(sectors * 512 / 2**30, 1)})
    if not found:
        # Containers often see no block device: report the root file system instead.
        total = shutil.disk_usage(root if root.exists() else "/").total
        found.append({"name": "rootfs", "size_gb": round(total / 2**30, 1)})
    return found


def nics(root: Path) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    net = root / "sys/class/net"
    if not net.is_dir():
        return found
    for dev in sorted(net.iterdir()):
        if dev.name == "lo":
            continue

        def read(name: str, dev: Path = dev) -> str:
            try:
                return (dev / name).read_text().strip()
            except OSError:
                return ""

        mtu = read("mtu")
        found.append(
            {
                "name": dev.name,
                "mac": read("address") or None,
                "mtu": int(mtu) if mtu.isdigit() else None,
                "addresses": [],
            }
        )
    return found[:256]


def os_release(root: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for candidate in (root / "etc/os-release", root / "usr/lib/os-release"):
        if candidate.exists():
            for line in candidate.read_text().splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    values[key.strip()] = value.strip().strip('"')
            break
    return {
        "id": values.get("ID", ""),
        "version_id": values.get("VERSION_ID", ""),
        "pretty_name": values.get("PRETTY_NAME", ""),
    }


def collect(root: Path = Path("/")) -> dict[str, Any]:
    """The hardware report the agent sends (the shape of the API's ``Hardware``)."""
    return {
        "cpus": cpu_count(root),
        "memory_mb": max(memory_mb(root), 1),
        "disks": disks(root),
        "nics": nics(root),
        "os": os_release(root),
        "kernel": platform.release(),
        "machine": platform.machine(),
    }
