"""Finding a server or a flavor the caller may see, or answering as if it did not exist.

Nova answers 404 for a server of another project and for a private flavor the caller's
project has no access to: whether a resource exists is itself information. Every route
that takes an id goes through these, so the rule is written once.
"""

from __future__ import annotations

from typing import Any

from edgefed.api.auth import Principal
from edgefed.api.policy import require_write
from edgefed.core.errors import Conflict, NotFound
from edgefed.services.compute.state import ComputeState
from edgefed.store.compute import FlavorRecord, RelocationRecord, Relocations, ServerRecord


async def get_server(
    state: ComputeState, principal: Principal, server_id: str, *, write: bool = False
) -> ServerRecord:
    """The live server ``server_id`` if the caller may see it (``write``: change it)."""
    server = await state.servers.get(server_id)
    if server is None:
        moved = await _moved(state, principal, server_id)
        raise NotFound(f"Instance {server_id} could not be found.{moved}")
    if write:
        require_write(principal, server.project_id, "os_compute_api:servers:update")
    elif not principal.is_admin and principal.project_id != server.project_id:
        raise NotFound(f"Instance {server_id} could not be found.")
    return server


async def relocated_to(
    state: ComputeState, principal: Principal, server_id: str
) -> RelocationRecord | None:
    """The last finished move of a server that left this site, if the caller may know;
    None once it came back (a move here since: the server is this site's again)."""
    found = None
    for record in await Relocations(state.ctx.store).list(server_id=server_id):
        if record.direction == "in" and record.phase in ("started", "done"):
            found = None
        elif (
            record.direction == "out"
            and record.phase == "done"
            and (principal.is_admin or principal.project_id == record.project_id)
        ):
            found = record
    return found


async def _moved(state: ComputeState, principal: Principal, server_id: str) -> str:
    """Where a server relocated from this site went (for the caller's 404)."""
    record = await relocated_to(state, principal, server_id)
    if record is None:
        return ""
    when = record.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return f" It was relocated to site {record.peer_site} at {when}."


async def visible_flavor(state: ComputeState, principal: Principal, flavor_id: str) -> FlavorRecord:
    """The flavor if it is public, the caller is an admin, or its project is on the
    flavor's access list."""
    flavor = await state.flavors.get(flavor_id)
    if flavor is not None and not flavor.is_public and not principal.is_admin:
        allowed = await state.flavors.access_list(flavor.id)
        if principal.project_id not in allowed:
            flavor = None
    if flavor is None:
        raise NotFound(f"Flavor {flavor_id} could not be found.")
    return flavor


def flavor_doc(flavor: FlavorRecord) -> dict[str, Any]:
    """The flavor as a server keeps it (a later change of the flavor does not resize)."""
    return {
        "id": flavor.id,
        "name": flavor.name,
        "vcpus": flavor.vcpus,
        "ram": flavor.ram,
        "disk": flavor.disk,
        "ephemeral": flavor.ephemeral,
        "swap": flavor.swap,
        "extra_specs": dict(flavor.extra_specs),
    }


def flavor_columns(doc: dict[str, Any]) -> dict[str, Any]:
    """A server row's columns for the flavor ``doc`` (``flavor_doc``)."""
    return {
        "flavor": doc,
        "flavor_id": doc["id"],
        "vcpus": int(doc["vcpus"]),
        "ram": int(doc["ram"]),
        "disk": int(doc.get("disk") or 0) + int(doc.get("ephemeral") or 0),
    }


def state_conflict(server: ServerRecord, action: str) -> Conflict:
    """Nova's 409 for an action the server's state does not allow now."""
    if server.task_state is not None:
        return Conflict(
            f"Cannot '{action}' instance {server.id} while it is in task_state {server.task_state}"
        )
    return Conflict(
        f"Cannot '{action}' instance {server.id} while it is in vm_state {server.vm_state}"
    )
