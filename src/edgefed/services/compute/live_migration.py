"""``os-migrateLive``: Nova's live migration of a server to another host of the site.

The request is read as Nova reads it, per microversion: ``host`` (a name, or null for
the scheduler's choice) and ``block_migration`` are required, ``disk_over_commit``
too before 2.25 (``block_migration`` a boolean there, ``"auto"`` allowed from 2.25),
``force`` from 2.30 (true needs a host). Admin only. Refused as Nova refuses: 409 for
a server not ACTIVE or PAUSED or with a task under way, 400 for a host that is not
one of the site's compute hosts (Nova's ``ComputeHostNotFound``), the one it runs on
(``UnableToMigrateToSelf``) or one that takes no server now (locked, down: "No valid
host"), and for a server whose host is down (``ComputeServiceUnavailable``).

The guest's own disks are not shared, so every live migration is a block migration
whatever ``block_migration`` says (Nova's ``auto`` answer for local disks). Its volumes
are shared storage: the destination opens the same volume (its file, or the
attachment's NBD export, which the site grants the destination host while the move
runs: services/inventory/agent_channel.py) and QEMU hands it over at the switchover; the attachments
name the new host once the guest runs there. The move itself is
``Moves._live`` (moves.py): the server is MIGRATING (task ``migrating``) on its host
while the driver moves the running guest (``ComputeDriver.live_migrate``), then ACTIVE
(or PAUSED, as it was) on the new host; a failure leaves it as it was on its host,
with the instance action's message saying why.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from edgefed.api.auth import Principal
from edgefed.api.policy import require_admin
from edgefed.core.errors import BadRequest
from edgefed.services.compute.lookups import state_conflict
from edgefed.services.compute.microversion import api_version
from edgefed.services.compute.scheduler import NO_VALID_HOST
from edgefed.services.compute.state import ComputeState
from edgefed.store.compute import ServerRecord

ACTION = "os-migrateLive"
TASK = "migrating"
TRUE = ("1", "t", "true", "on", "y", "yes")
FALSE = ("0", "f", "false", "off", "n", "no")


def _invalid(field: str, value: Any, why: str) -> BadRequest:
    return BadRequest(f"Invalid input for field/attribute {field}. Value: {value!r}. {why}")


def _boolean(field: str, value: Any, *, auto: bool = False) -> bool | None:
    """oslo's strict ``bool_from_string``, as Nova's schema and API read it."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, str | int) else None
    if auto and text == "auto":
        return None
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise _invalid(field, value, f"{value!r} is not a valid boolean value")


def read_body(request: Request, data: Any) -> str | None:
    """The destination host asked for (None: the scheduler's choice)."""
    version = api_version(request)
    if not isinstance(data, dict):
        raise _invalid(ACTION, data, f"{data!r} is not of type 'object'")
    required = ["host", "block_migration"]
    if not version.at_least("2.25"):
        required.append("disk_over_commit")
    allowed = {*required, *(("force",) if version.at_least("2.30") else ())}
    for name in required:
        if name not in data:
            raise _invalid(ACTION, data, f"'{name}' is a required property")
    extra = sorted(set(data) - allowed)
    if extra:
        names = ", ".join(repr(e) for e in extra)
        verb = "was" if len(extra) == 1 else "were"
        raise _invalid(
            ACTION, data, f"Additional properties are not allowed ({names} {verb} unexpected)"
        )
    host = data["host"]
    if host is not None and (not isinstance(host, str) or not 1 <= len(host) <= 255):
        raise _invalid("host", host, "It must be null or a string of 1 to 255 characters.")
    _boolean("block_migration", data["block_migration"], auto=version.at_least("2.25"))
    if "disk_over_commit" in data:
        _boolean("disk_over_commit", data["disk_over_commit"])
    if "force" in data and _boolean("force", data["force"]) and not host:
        raise BadRequest("Can't force to a non-provided destination")
    return host


async def begin(
    request: Request, principal: Principal, state: ComputeState, server: ServerRecord, data: Any
) -> None:
    """Check the request as Nova does and record the intent (the caller starts it)."""
    require_admin(principal, "os_compute_api:os-migrate-server:migrate_live")
    host = read_body(request, data)
    if server.vm_state not in ("active", "paused") or server.task_state is not None:
        raise state_conflict(server, ACTION)
    await state.scheduler.refresh()
    hosts = state.scheduler.source
    gone = hosts.refusal(server.host) if server.host else None
    if gone is not None and "locked" not in gone:  # a locked host is left by moves
        raise BadRequest(f"Compute service of {server.host} is unavailable at this time.")
    if host is not None:
        if host not in {h.name for h in hosts.hosts()}:
            raise BadRequest(f"Compute host {host} could not be found.")
        if host == server.host:
            raise BadRequest(
                f"Unable to migrate instance ({server.id}) to current host ({server.host})."
            )
        refusal = hosts.refusal(host)
        if refusal is not None:
            raise BadRequest(f"{NO_VALID_HOST}({refusal})")
    migration = {
        "kind": "live-migration",
        "old_host": server.host,
        "target": host,
        "vm_state": server.vm_state,
    }
    done = await state.servers.transition(
        server.id, expect_task=[None], task_state=TASK, migration=migration
    )
    if not done:
        fresh = await state.servers.get(server.id)
        raise state_conflict(fresh or server, ACTION)
