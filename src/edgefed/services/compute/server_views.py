"""How a server looks on the wire, for the negotiated microversion.

Fields appear and change shape with microversions (the embedded flavor at 2.47,
``locked`` at 2.9, ``description`` at 2.19, ``tags`` at 2.26, ``locked_reason`` at 2.73,
``pinned_availability_zone`` at 2.96 …); this module is the one place that knows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from starlette.requests import Request

from edgefed.api.auth import Principal
from edgefed.services.compute.links import links
from edgefed.services.compute.microversion import APIVersion
from edgefed.store.compute import ServerRecord, mappings_of
from edgefed.store.network import NetworkRecord, PortRecord

# (vm_state, task_state) -> status, as Nova's api/openstack/common.py maps them.
_STATUS: dict[str, dict[str | None, str]] = {
    "active": {
        None: "ACTIVE",
        "rebooting": "REBOOT",
        "rebooting_hard": "HARD_REBOOT",
        "relocating": "MIGRATING",
        "resize_prep": "RESIZE",
        "resize_migrating": "RESIZE",
        "resize_finish": "RESIZE",
        "migrating": "MIGRATING",
        "rebuilding": "REBUILD",
    },
    "building": {None: "BUILD"},
    "stopped": {
        None: "SHUTOFF",
        "relocating": "MIGRATING",
        "resize_prep": "RESIZE",
        "resize_migrating": "RESIZE",
        "resize_finish": "RESIZE",
        "rebuilding": "REBUILD",
    },
    "resized": {None: "VERIFY_RESIZE", "resize_reverting": "REVERT_RESIZE"},
    "shelved_offloaded": {None: "SHELVED_OFFLOADED", "unshelving": "SHELVED_OFFLOADED"},
    "paused": {None: "PAUSED"},
    "suspended": {None: "SUSPENDED"},
    "error": {None: "ERROR", "rebuilding": "REBUILD"},
    "deleted": {None: "DELETED"},
}
STATUS_TO_VM_STATE = {
    "ACTIVE": "active",
    "BUILD": "building",
    "SHUTOFF": "stopped",
    "PAUSED": "paused",
    "SUSPENDED": "suspended",
    "ERROR": "error",
    "DELETED": "deleted",
    "REBOOT": "active",
    "HARD_REBOOT": "active",
    "VERIFY_RESIZE": "resized",
    "SHELVED_OFFLOADED": "shelved_offloaded",
}


def status_of(server: ServerRecord) -> str:
    states = _STATUS.get(server.vm_state, {None: "UNKNOWN"})
    return states.get(server.task_state, states[None])


def iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def usage_time(value: dt.datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%f")


def host_id(server: ServerRecord) -> str:
    if not server.host:
        return ""
    return hashlib.sha224((server.project_id + server.host).encode()).hexdigest()


def addresses(
    ports: list[PortRecord], networks: dict[str, NetworkRecord]
) -> dict[str, list[dict[str, Any]]]:
    result: dict[str, list[dict[str, Any]]] = {}
    for port in ports:
        network = networks.get(port.network_id)
        label = network.name if network is not None and network.name else port.network_id
        for ip in port.fixed_ips:
            result.setdefault(label, []).append(
                {
                    "version": 6 if ":" in ip.ip_address else 4,
                    "addr": ip.ip_address,
                    "OS-EXT-IPS:type": "fixed",
                    "OS-EXT-IPS-MAC:mac_addr": port.mac_address,
                }
            )
    return result


def flavor_view(request: Request, server: ServerRecord, version: APIVersion) -> dict[str, Any]:
    if not version.at_least("2.47"):
        return {"id": server.flavor_id, "links": links(request, "flavors", server.flavor_id)[1:]}
    f = server.flavor
    return {
        "vcpus": f["vcpus"],
        "ram": f["ram"],
        "disk": f["disk"],
        "ephemeral": f.get("ephemeral", 0),
        "swap": f.get("swap", 0),
        "original_name": f["name"],
        "extra_specs": dict(f.get("extra_specs", {})),
    }


def volumes_attached(server: ServerRecord, version: APIVersion) -> list[dict[str, Any]]:
    shown = []
    for mapping in mappings_of(server.volumes):
        item: dict[str, Any] = {"id": mapping.volume_id}
        if version.at_least("2.3"):
            item["delete_on_termination"] = mapping.delete_on_termination
        shown.append(item)
    return shown


def server_view(
    request: Request,
    server: ServerRecord,
    version: APIVersion,
    principal: Principal,
    *,
    ports: list[PortRecord],
    networks: dict[str, NetworkRecord],
    relocating_to: str | None = None,
) -> dict[str, Any]:
    """``relocating_to``: the site a move under way takes the server to (shown as
    ``os-edge:relocating_to``, by which a scoped list shows it once, where it is)."""
    admin = principal.is_admin
    status = status_of(server)
    image: Any = ""
    if server.image_id:
        image = {"id": server.image_id, "links": links(request, "images", server.image_id)[1:]}
    view: dict[str, Any] = {
        "id": server.id,
        "name": server.name,
        "status": status,
        "tenant_id": server.project_id,
        "user_id": server.user_id,
        "metadata": dict(server.metadata),
        "hostId": host_id(server),
        "image": image,
        "flavor": flavor_view(request, server, version),
        "created": iso(server.created_at),
        "updated": iso(server.updated_at),
        "addresses": addresses(ports, networks),
        "accessIPv4": "",
        "accessIPv6": "",
        "links": links(request, "servers", server.id),
        "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": server.availability_zone or "",
        "config_drive": server.config_drive,
        "key_name": server.key_name,
        "OS-SRV-USG:launched_at": usage_time(server.launched_at),
        "OS-SRV-USG:terminated_at": usage_time(server.terminated_at),
        "security_groups": [{"name": name} for name in server.security_groups],
        "OS-EXT-STS:task_state": server.task_state,
        "OS-EXT-STS:vm_state": server.vm_state,
        "OS-EXT-STS:power_state": server.power_state,
        "os-extended-volumes:volumes_attached": volumes_attached(server, version),
    }
    if relocating_to is not None:
        view["os-edge:relocating_to"] = relocating_to
    if status in ("ACTIVE", "BUILD", "REBOOT", "HARD_REBOOT"):
        view["progress"] = 100 if status == "ACTIVE" else 0
    if server.fault is not None and status in ("ERROR", "DELETED"):
        shown = dict(server.fault)
        if not admin:
            shown.pop("details", None)
        view["fault"] = shown
    if admin:
        view["OS-EXT-SRV-ATTR:host"] = server.host
        view["OS-EXT-SRV-ATTR:hypervisor_hostname"] = server.host
        view["OS-EXT-SRV-ATTR:instance_name"] = f"instance-{server.id[:8]}"
        if version.at_least("2.3"):
            view.update(
                {
                    "OS-EXT-SRV-ATTR:reservation_id": server.reservation_id,
                    "OS-EXT-SRV-ATTR:launch_index": server.launch_index,
                    "OS-EXT-SRV-ATTR:hostname": server.hostname,
                    "OS-EXT-SRV-ATTR:kernel_id": "",
                    "OS-EXT-SRV-ATTR:ramdisk_id": "",
                    "OS-EXT-SRV-ATTR:root_device_name": "/dev/vda",
                    "OS-EXT-SRV-ATTR:user_data": server.user_data,
                }
            )
        if version.at_least("2.16"):
            view["host_status"] = "UP" if server.host else ""
    elif version.at_least("2.90"):
        view["OS-EXT-SRV-ATTR:hostname"] = server.hostname
    if version.at_least("2.9"):
        view["locked"] = server.locked
    if version.at_least("2.19"):
        view["description"] = server.description
    if version.at_least("2.26"):
        view["tags"] = list(server.tags)
    if version.at_least("2.63"):
        view["trusted_image_certificates"] = None
    if version.at_least("2.71"):
        view["server_groups"] = []
    if version.at_least("2.73"):
        view["locked_reason"] = server.locked_reason
    if version.at_least("2.96"):
        view["pinned_availability_zone"] = None
    return view


def brief_view(request: Request, server: ServerRecord) -> dict[str, Any]:
    return {"id": server.id, "name": server.name, "links": links(request, "servers", server.id)}
