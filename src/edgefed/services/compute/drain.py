"""Draining this site: every guest relocated to other sites, before maintenance.

``POST /v2.1/os-edge/drain {"drain": {"to": "@region=eu"}}`` (admin): the sites the
expression names (the scope language's, without this site) are asked for their free
capacity (``os-hypervisors/statistics``, with the caller's token); each server, largest
first, goes to the nearest site (measured RTT) that still has room for it after what
this drain already sent there, else the next; each is offered there at once
(relocation_out.offer: the destination checks and grants with the caller's token), so
the moves go on with their grants alone, after the token expires or this site restarts,
at most ``relocation_concurrency`` at a time. A server no site takes stays, its reason
in the plan. While the drain is active the site takes no new server (409), and an alarm
(``site_draining``) says how far it is; asked again, the drain offers what has not
found a place yet (a retry after a refusal) and keeps the rest. ``GET`` shows the plan
with each move's phase and bytes; ``DELETE`` undrains: moves that have not reached
their commit are undone (the guests start again here), the others finish, the alarm
clears and the site takes servers again.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.policy import require_admin
from edgefed.api.responses import Json
from edgefed.core.errors import BadRequest, Conflict, EdgefedError, NotFound
from edgefed.core.ids import new_uuid
from edgefed.core.scope import parse_expr
from edgefed.core.scope_resolve import sites_of
from edgefed.services.compute.body import read_json, req_str, section
from edgefed.services.compute.microversion import MicroversionRoute
from edgefed.services.compute.relocation_out import (
    LinkDown,
    _request,
    offer,
    relocator_of,
    view,
)
from edgefed.services.compute.state import ComputeState, compute_state
from edgefed.store.alarms import AlarmRepository, Severity
from edgefed.store.compute import DrainRecord, Drains, Relocations, ServerRecord

log = logging.getLogger("edgefed.compute.drain")

router = APIRouter(route_class=MicroversionRoute)
PATH = "/v2.1/os-edge/drain"
ALARM = "site_draining"
STATS = "/compute/v2.1/os-hypervisors/statistics"


async def _room(state: ComputeState, token: str, site: str) -> dict[str, float] | str:
    """A site's free (vcpus, RAM), or why it cannot say."""
    try:
        r = await _request(state, site, "GET", STATS, token=token,
                           headers={"OpenStack-API-Version": "compute 2.87"})  # fmt: skip
    except LinkDown as exc:
        return str(exc)
    if r.status_code != 200:
        return f"{site} answered {r.status_code} for its capacity"
    stats = r.json()["hypervisor_statistics"]
    return {
        "vcpus": float(stats["vcpus"] - stats["vcpus_used"]),
        "ram": float(stats["free_ram_mb"]),
    }


async def _plan(
    state: ComputeState, principal: Principal, targets: tuple[str, ...], drain: DrainRecord | None
) -> list[dict[str, Any]]:
    """Offer each server not placed yet to the nearest target with room."""
    ctx = state.ctx
    token = principal.token or ""
    rooms: dict[str, dict[str, float]] = {}
    unreachable: dict[str, str] = {}
    for site in targets:
        found = await _room(state, token, site)
        if isinstance(found, str):
            unreachable[site] = found
        else:
            rooms[site] = found
    fleet = ctx.fleet

    def distance(site: str) -> float:
        rtt = fleet.rtt_ms(ctx.name, site) if fleet is not None else None
        return math.inf if rtt is None else rtt

    plan = {e["server_id"]: e for e in (drain.details.get("plan", []) if drain else [])}
    relocations = Relocations(ctx.store)
    servers = await state.servers.list_all(project_id=None)
    servers.sort(key=lambda s: (-s.ram, -s.vcpus, s.name))
    for server in servers:
        entry = plan.get(server.id)
        if entry is not None and entry.get("relocation_id"):
            moved = await relocations.get(entry["relocation_id"])
            if moved is not None and moved.phase != "failed":
                continue  # under way, or done
        entry = {"server_id": server.id, "name": server.name, "site": None,
                 "relocation_id": None, "refusal": None}  # fmt: skip
        plan[server.id] = entry
        entry["refusal"] = await _place(state, principal, server, rooms, distance, entry)
        if entry["refusal"] is not None and unreachable:
            entry["refusal"] += "; unreachable: " + "; ".join(
                f"{k}: {v}" for k, v in sorted(unreachable.items())
            )
    return list(plan.values())


async def _place(
    state: ComputeState,
    principal: Principal,
    server: ServerRecord,
    rooms: dict[str, dict[str, float]],
    distance: Any,
    entry: dict[str, Any],
) -> str | None:
    """Offer the server to the nearest site with room; None once one took it."""
    if server.task_state is not None or server.vm_state not in ("active", "stopped"):
        return f"the server is {server.vm_state}/{server.task_state}: not moved"
    refusals = []

    def fits(site: str) -> bool:
        return rooms[site]["vcpus"] >= server.vcpus and rooms[site]["ram"] >= server.ram

    # The free vCPUs and RAM a site shows are physical, before its allocation ratios: they
    # order the sites (those with room by that count first, the nearest first), and the
    # offer, which the destination checks against its scheduler, decides.
    for site in sorted(rooms, key=lambda s: (not fits(s), distance(s), -rooms[s]["ram"], s)):
        try:
            record = await offer(state, principal, server, site, mode="cold")
        except EdgefedError as exc:
            refusals.append(exc.message)
            continue
        rooms[site]["vcpus"] -= server.vcpus
        rooms[site]["ram"] -= server.ram
        entry.update(site=site, relocation_id=record.id)
        relocator_of(state).start(record.id)
        return None
    return "; ".join(refusals) or "no site of the drain could say how much room it has"


async def _view(state: ComputeState, drain: DrainRecord) -> dict[str, Any]:
    relocations = Relocations(state.ctx.store)
    servers = []
    for entry in drain.details.get("plan", []):
        record = (
            await relocations.get(entry["relocation_id"]) if entry.get("relocation_id") else None
        )
        moved = view(record) if record is not None else {}
        servers.append({
            "server_id": entry["server_id"],
            "name": entry["name"],
            "site": entry.get("site"),
            "phase": moved.get("phase", "refused" if entry.get("refusal") else "waiting"),
            "bytes_done": moved.get("bytes_done", 0),
            "bytes_total": moved.get("bytes_total"),
            "error": moved.get("error") or entry.get("refusal"),
        })  # fmt: skip
    return {
        "id": drain.id,
        "site": state.ctx.name,
        "to": drain.targets,
        "state": drain.state,
        "moved": sum(1 for s in servers if s["phase"] == "done"),
        "total": len(servers),
        "servers": servers,
    }


async def _settle(state: ComputeState, drain: DrainRecord) -> tuple[DrainRecord, dict[str, Any]]:
    """The drain's view; ``drained`` once no guest is left, the alarm saying how far."""
    shown = await _view(state, drain)
    alive = await state.servers.list_all(project_id=None)
    moving = [x for x in shown["servers"] if x["phase"] not in ("done", "failed", "refused")]
    if drain.state == "draining" and not alive and not moving:
        await Drains(state.ctx.store).change(drain.id, state="drained")
        drain = await Drains(state.ctx.store).active() or drain
        shown["state"] = drain.state
    reason = (
        f"drained to {drain.targets}: no guest left; undrain to take servers again"
        if drain.state == "drained"
        else f"draining to {drain.targets}: {shown['moved']} of {shown['total']} moved, "
        f"{len(alive)} left"
    )
    await AlarmRepository(state.ctx.store).raise_alarm(
        type=ALARM, severity=Severity.MINOR, entity=state.ctx.name, reason=reason, now=time.time()
    )
    return drain, shown


@router.post(PATH, status_code=202)
async def start_drain(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    require_admin(principal, "os_compute_api:os-edge:drain")
    data = section(await read_json(request), "drain")
    to = req_str(data, "to", max_len=1024)
    ctx = state.ctx
    if ctx.fleet is None:
        raise BadRequest("This site is in no fleet: there is nowhere to drain it to.")
    try:
        named = sites_of(parse_expr(to), ctx.fleet)
    except BadRequest as exc:
        raise BadRequest(f"Invalid drain target {to!r}: {exc.message}") from exc
    targets = tuple(s for s in named if s != ctx.name)
    if not targets:
        raise BadRequest(f"The drain target {to!r} names no site but {ctx.name}.")
    drains = Drains(ctx.store)
    drain = await drains.active()
    if drain is not None and drain.targets != to:
        raise Conflict(f"Site {ctx.name} is being drained to {drain.targets} already.")
    if drain is None:
        drain = await drains.create(id=new_uuid(), targets=to, details={"plan": []})
    plan = await _plan(state, principal, targets, drain)
    await drains.change(drain.id, details={"plan": plan})
    drain = await drains.active() or drain
    log.info("draining %s to %s (%s)", ctx.name, to, ", ".join(targets))
    return Json({"drain": (await _settle(state, drain))[1]}, status_code=202)


@router.get(PATH)
async def show_drain(
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Json:
    require_admin(principal, "os_compute_api:os-edge:drain")
    drain = await Drains(state.ctx.store).active()
    if drain is None:
        raise NotFound(f"Site {state.ctx.name} is not being drained.")
    return Json({"drain": (await _settle(state, drain))[1]})


@router.delete(PATH, status_code=204)
async def undrain(
    principal: Principal = Depends(current_principal),
    state: ComputeState = Depends(compute_state),
) -> Response:
    require_admin(principal, "os_compute_api:os-edge:drain")
    drains = Drains(state.ctx.store)
    drain = await drains.active()
    if drain is None:
        raise NotFound(f"Site {state.ctx.name} is not being drained.")
    relocator = relocator_of(state)
    for entry in drain.details.get("plan", []):
        if entry.get("relocation_id"):
            await relocator.cancel(entry["relocation_id"], "the site was undrained")
    await drains.change(drain.id, state="undrained")
    await AlarmRepository(state.ctx.store).clear_condition(
        type=ALARM, entity=state.ctx.name, now=time.time()
    )
    return Response(status_code=204)
