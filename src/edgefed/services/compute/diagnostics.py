"""``GET /servers/{id}/diagnostics``: a running guest's CPU, memory, disk and NIC counters.

From microversion 2.48 the answer has Nova's standardized shape (every field present,
null where the driver does not know; lists of CPUs, disks and NICs with fixed keys);
before, the free-form dictionary of Nova's libvirt driver (``cpu0_time``, ``memory``,
``vda_read``, ``vnet0_rx``…), made here from the same figures so both versions agree.
``driver`` is this site's driver (``qemu``, ``fake``), not one of Nova's virt drivers
(``libvirt``…): the CLI and openstacksdk show it as it is, Tempest's response schema
would refuse it.

As Nova: admin only (a member sees 403 for a server of its project, 404 for another's);
409 before the server has a host and while it is not running ("Cannot 'get_diagnostics'
instance … while it is in power state shutdown"), and when the hypervisor cannot answer.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request

from edgefed.api.auth import Principal, current_principal
from edgefed.api.policy import require_admin
from edgefed.api.responses import Json
from edgefed.core.errors import Conflict
from edgefed.drivers.base import DriverError, PowerState
from edgefed.services.compute.lookups import get_server
from edgefed.services.compute.microversion import MicroversionRoute, api_version
from edgefed.services.compute.state import ComputeState, compute_state
from edgefed.store.compute import ServerRecord
from edgefed.store.schema import utcnow

log = logging.getLogger("edgefed.compute.diagnostics")

router = APIRouter(route_class=MicroversionRoute)

POLICY = "os_compute_api:os-server-diagnostics"
# nova/compute/power_state.py STATE_MAP: the names diagnostics and their 409s use.
STATE_NAMES = {
    PowerState.NOSTATE: "pending",
    PowerState.RUNNING: "running",
    PowerState.PAUSED: "paused",
    PowerState.SHUTDOWN: "shutdown",
    PowerState.CRASHED: "crashed",
    PowerState.SUSPENDED: "suspended",
}
PRIMITIVE_FIELDS = ("hypervisor", "hypervisor_os", "uptime", "num_cpus", "num_nics", "num_disks")
LIST_FIELDS = {
    "cpu_details": ("id", "time", "utilisation"),
    "disk_details": (
        "read_bytes", "read_requests", "write_bytes", "write_requests", "errors_count",
    ),
    "nic_details": (
        "mac_address", "rx_octets", "rx_errors", "rx_drop", "rx_packets", "rx_rate",
        "tx_octets", "tx_errors", "tx_drop", "tx_packets", "tx_rate",
    ),
}  # fmt: skip
# The legacy names of libvirt's get_diagnostics, per standardized key.
LEGACY_DISK = {
    "read_bytes": "read",
    "read_requests": "read_req",
    "write_bytes": "write",
    "write_requests": "write_req",
    "errors_count": "errors",
}
LEGACY_NIC = {
    "rx_octets": "rx",
    "rx_packets": "rx_packets",
    "rx_errors": "rx_errors",
    "rx_drop": "rx_drop",
    "tx_octets": "tx",
    "tx_packets": "tx_packets",
    "tx_errors": "tx_errors",
    "tx_drop": "tx_drop",
}


def state_name(power: int) -> str:
    try:
        return STATE_NAMES[PowerState(power)]
    except ValueError:
        return "pending"


def _int(value: Any) -> int | None:
    """A driver's number as an integer; None for anything else (never a 500)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def _items(raw: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
    fields = LIST_FIELDS[key]
    listed = raw.get(key)
    items: list[dict[str, Any]] = []
    for entry in listed if isinstance(listed, list) else []:
        entry = entry if isinstance(entry, Mapping) else {}
        item: dict[str, Any] = {f: _int(entry.get(f)) for f in fields}
        if "mac_address" in item:
            mac = entry.get("mac_address")
            item["mac_address"] = mac if isinstance(mac, str) else None
        items.append(item)
    return items


def standard_view(raw: Mapping[str, Any], server: ServerRecord, driver: str) -> dict[str, Any]:
    """Nova's 2.48 shape from what the driver said, completed from the server's record."""
    cpus, disks, nics = (_items(raw, k) for k in ("cpu_details", "disk_details", "nic_details"))
    view: dict[str, Any] = {
        f: raw.get(f) if f.startswith("hypervisor") else _int(raw.get(f)) for f in PRIMITIVE_FIELDS
    }
    for name in ("hypervisor", "hypervisor_os"):
        if not isinstance(view[name], str):
            view[name] = None
    state = raw.get("state")
    if state not in STATE_NAMES.values():
        state = state_name(server.power_state)
    if view["uptime"] is None and server.launched_at is not None:
        launched = server.launched_at
        if launched.tzinfo is None:
            launched = launched.replace(tzinfo=dt.UTC)
        view["uptime"] = max(0, int((utcnow() - launched).total_seconds()))
    config_drive = raw.get("config_drive")
    memory = raw.get("memory_details")
    memory = memory if isinstance(memory, Mapping) else {}
    view.update(
        {
            "state": state,
            "driver": raw.get("driver") if isinstance(raw.get("driver"), str) else driver,
            "config_drive": (
                config_drive if isinstance(config_drive, bool) else bool(server.config_drive)
            ),
            "num_cpus": view["num_cpus"] if view["num_cpus"] is not None else server.vcpus,
            "num_disks": view["num_disks"] if view["num_disks"] is not None else len(disks),
            "num_nics": view["num_nics"] if view["num_nics"] is not None else len(nics),
            "cpu_details": cpus,
            "disk_details": disks,
            "nic_details": nics,
            "memory_details": {
                "maximum": _int(memory.get("maximum")) or server.ram,
                "used": _int(memory.get("used")),
            },
        }
    )
    return view


def legacy_view(standard: Mapping[str, Any]) -> dict[str, Any]:
    """The free-form answer before 2.48, in the words of Nova's libvirt driver."""
    out: dict[str, Any] = {}
    for cpu in standard["cpu_details"]:
        if cpu["id"] is not None and cpu["time"] is not None:
            out[f"cpu{cpu['id']}_time"] = cpu["time"]
    for index, disk in enumerate(standard["disk_details"]):
        device = "vd" + chr(ord("a") + index % 26)
        for key, suffix in LEGACY_DISK.items():
            if disk[key] is not None:
                out[f"{device}_{suffix}"] = disk[key]
    for index, nic in enumerate(standard["nic_details"]):
        for key, suffix in LEGACY_NIC.items():
            if nic[key] is not None:
                out[f"vnet{index}_{suffix}"] = nic[key]
    memory = standard["memory_details"]
    # libvirt says KiB here.
    if memory["maximum"] is not None:
        out["memory"] = memory["maximum"] * 1024
    if memory["used"] is not None:
        out["memory-rss"] = memory["used"] * 1024
    return out


async def read_diagnostics(state: ComputeState, server: ServerRecord) -> dict[str, Any]:
    """The standardized diagnostics of a running, placed server (409 otherwise)."""
    if not server.host:
        raise Conflict(f"Instance {server.id} is not ready")
    if server.power_state != PowerState.RUNNING:
        raise Conflict(
            f"Cannot 'get_diagnostics' instance {server.id} while it is in power state "
            f"{state_name(server.power_state)}"
        )
    try:
        raw = await state.driver.diagnostics(server.id)
    except DriverError as exc:
        log.info("diagnostics of %s: %s", server.id, exc)
        raise Conflict(f"Cannot 'get_diagnostics' instance {server.id}: {exc}") from exc
    return standard_view(raw, server, state.driver.name)


@router.get("/v2.1/servers/{server_id}/diagnostics")
async def server_diagnostics(
    server_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    server = await get_server(state, principal, server_id)
    require_admin(principal, POLICY)
    standard = await read_diagnostics(state, server)
    if api_version(request).at_least("2.48"):
        return Json(standard)
    return Json(legacy_view(standard))
