"""Operators' routes for sync conflicts: list them, and resolve one.

A conflict is a push that clashed with a row this site holds (store/sync/conflicts.py).
Resolving it takes the operator's decision (docs/sync.md): after deleting or renaming the
local row, ask the source for its version again; *adopt* the source's version (the row
held here becomes the source's); or *dismiss* the clash and keep the row held here.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Request

from edgefed.api.auth import Principal, current_principal
from edgefed.api.policy import require_admin
from edgefed.api.responses import Json
from edgefed.api.service import DeclaredRoute
from edgefed.core.errors import BadRequest, Conflict, NotFound
from edgefed.store.sync import KINDS
from edgefed.sync.bodies import ResolveBody
from edgefed.sync.peers import PULL_PATH, signed_call
from edgefed.sync.progress import conflict_view
from edgefed.sync.state import SyncEngine, engine_of

log = logging.getLogger("edgefed.sync")

router = APIRouter(route_class=DeclaredRoute)


@router.get("/sync/conflicts")
async def list_conflicts(
    request: Request,
    source: str | None = None,
    kind: str | None = None,
    principal: Principal = Depends(current_principal),
) -> Json:
    """Pushes that clashed with a row this site holds, per source and resource."""
    require_admin(principal, "sync:list_conflicts")
    rows = await engine_of(request).conflicts.list(source=source, kind=kind)
    return Json({"conflicts": [conflict_view(c) for c in rows]})


@router.post("/sync/conflicts/resolve")
async def resolve_conflict(
    body: ResolveBody, request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    """Settle one conflict (docs/sync.md): after deleting or renaming the local row, ask
    the source for its version again; or ``adopt`` (the source's version replaces the
    row held here); or ``dismiss`` (keep the row held here, forget the clash)."""
    require_admin(principal, "sync:resolve")
    engine = engine_of(request)
    spec = body.resolve
    if spec.adopt and spec.dismiss:
        raise BadRequest("adopt or dismiss, not both")
    conflicts = engine.conflicts
    conflict = await conflicts.get(source=spec.source, kind=spec.kind, key=spec.id)
    if conflict is None:
        raise NotFound(f"no sync conflict of {spec.source}'s {spec.kind} {spec.id} here")
    held = f"{conflict['held_kind']} {conflict['held_key']}"
    if spec.dismiss:
        await conflicts.drop(source=spec.source, kind=spec.kind, key=spec.id)
        engine.telemetry.wake.set()
        return Json({"resolved": {**conflict_view(conflict), "resolution": "dismissed"}})
    if spec.adopt:
        if conflict["clash"] == "name":
            raise Conflict(
                f"adopting cannot settle a name clash: rename or delete the local {held}, "
                "then resolve again"
            )
        if conflict["held_origin"] is not None:
            raise Conflict(
                f"{held} was received from {conflict['held_origin']}; only that source's "
                "data may change it (unregister from it first to make it this site's own)"
            )
        await conflicts.adopt(conflict)
        resolution = "adopted"
    else:
        if conflict["clash"] != "name" and await conflicts.still_held(conflict):
            raise Conflict(
                f"{held} is still here: delete or rename it first, or adopt the source's version"
            )
        await conflicts.drop(source=spec.source, kind=spec.kind, key=spec.id)
        resolution = "requested"
    engine.telemetry.wake.set()  # the alarm follows the count
    answer = await _request_again(engine, spec.source, conflict)
    return Json(
        {"resolved": {**conflict_view(conflict), "resolution": resolution, "request": answer}}
    )


async def _request_again(
    engine: SyncEngine, source: str, conflict: dict[str, Any]
) -> dict[str, Any]:
    """Ask ``source`` for the resource again (and, after adopting a parent, the parent)."""
    wanted = [(str(conflict["kind"]), str(conflict["key"]))]
    held = (str(conflict["held_kind"]), str(conflict["held_key"]))
    if conflict["clash"] == "parent" and held[0] in KINDS:
        wanted.insert(0, held)
    statuses: dict[str, Any] = {}
    for kind, key in wanted:
        try:
            r = await signed_call(engine.ctx, source, "POST", PULL_PATH, {"kind": kind, "id": key})
            statuses[f"{kind} {key}"] = r.status_code
        except Exception as exc:
            log.info("asking %s for %s %s again failed: %r", source, kind, key, exc)
            statuses[f"{kind} {key}"] = 503
    return statuses
