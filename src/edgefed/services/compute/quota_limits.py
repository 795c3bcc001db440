"""A project's compute limits and whether more servers fit: Nova's counting quotas.

A project's limit for a resource is its own row if it has one, else the ``default``
quota class row, else Nova's built-in default. Usage is counted from the live servers
and keypairs, so there are no reservations to leak. Used by the quota routes
(quotas.py) and by every write that a quota bounds (boots, key pairs, metadata).
"""

from __future__ import annotations

from edgefed.core.errors import OverQuota
from edgefed.services.compute.microversion import APIVersion
from edgefed.services.compute.state import ComputeState

DEFAULTS: dict[str, int] = {
    "instances": 10,
    "cores": 20,
    "ram": 51200,
    "metadata_items": 128,
    "key_pairs": 100,
    "server_groups": 10,
    "server_group_members": 10,
    "injected_files": 5,
    "injected_file_content_bytes": 10240,
    "injected_file_path_bytes": 255,
}
# Gone from the API at 2.36 (network proxies) and 2.57 (personality files).
NETWORK_PROXY = {
    "floating_ips": 10,
    "fixed_ips": -1,
    "security_groups": 10,
    "security_group_rules": 20,
}
PERSONALITY = ("injected_files", "injected_file_content_bytes", "injected_file_path_bytes")


def visible_resources(version: APIVersion) -> dict[str, int]:
    shown = dict(DEFAULTS)
    if version.at_least("2.57"):
        for key in PERSONALITY:
            shown.pop(key)
    if not version.at_least("2.36"):
        shown.update(NETWORK_PROXY)
    return shown


async def class_limits(state: ComputeState) -> dict[str, int]:
    return {**DEFAULTS, **await state.quotas.limits(kind="class", owner="default")}


async def project_limits(state: ComputeState, project_id: str) -> dict[str, int]:
    own = await state.quotas.limits(kind="project", owner=project_id)
    return {**await class_limits(state), **own}


async def project_usage(
    state: ComputeState, project_id: str, user_id: str | None
) -> dict[str, int]:
    instances, cores, ram = await state.servers.usage_by_project(project_id)
    keypairs = await state.keypairs.count(user_id=user_id) if user_id else 0
    return {"instances": instances, "cores": cores, "ram": ram, "key_pairs": keypairs}


def over_quota(resource: str, requested: int, used: int, allowed: int) -> OverQuota:
    return OverQuota(
        f"Quota exceeded for {resource}: Requested {requested}, but already used {used} "
        f"of {allowed} {resource}"
    )


async def check_server_quota(
    state: ComputeState, *, project_id: str, count: int, vcpus: int, ram: int, metadata_items: int
) -> None:
    """Raise OverQuota (403, Nova's message) if ``count`` more servers do not fit."""
    limits = await project_limits(state, project_id)
    if 0 <= limits["metadata_items"] < metadata_items:
        raise OverQuota(
            f"Quota exceeded for metadata_items: Requested {metadata_items}, but already used 0 "
            f"of {limits['metadata_items']} metadata_items"
        )
    instances, cores, used_ram = await state.servers.usage_by_project(project_id)
    for resource, requested, used in (
        ("instances", count, instances),
        ("cores", count * vcpus, cores),
        ("ram", count * ram, used_ram),
    ):
        allowed = limits[resource]
        if allowed >= 0 and used + requested > allowed:
            raise over_quota(resource, requested, used, allowed)
