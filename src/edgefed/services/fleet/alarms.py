"""HTTP surface of this site's alarms under /edge/v1/alarms: list and filter, raise
(operators), show, clear. Aggregated lists over many sites are in ``status``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from edgefed.api.auth import Principal, current_principal
from edgefed.api.context import site_context
from edgefed.api.responses import Json
from edgefed.api.service import DeclaredRoute
from edgefed.core.errors import Conflict, NotFound
from edgefed.services.fleet.access import require_this_site
from edgefed.store.alarms import AlarmFilter, AlarmRecord, AlarmRepository, Severity

router = APIRouter(prefix="/edge/v1", route_class=DeclaredRoute)

StateFilter = Literal["active", "cleared", "all"]
TYPE_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat(timespec="seconds")


def alarm_json(alarm: AlarmRecord, *, site: str) -> dict[str, Any]:
    return {
        "id": alarm.id,
        "site": site,
        "type": alarm.type,
        "severity": alarm.severity,
        "entity": alarm.entity,
        "reason": alarm.reason,
        "state": alarm.state,
        "origin": alarm.origin,
        "raised_by": alarm.raised_by,
        "raised_at": iso(alarm.raised_at),
        "updated_at": iso(alarm.updated_at),
        "cleared_at": iso(alarm.cleared_at),
        "cleared_by": alarm.cleared_by,
    }


class AlarmRaise(BaseModel):
    model_config = {"extra": "forbid"}
    severity: Severity
    entity: str = Field(min_length=1, max_length=255)
    reason: str = Field(min_length=1, max_length=2000)
    type: str = Field(default="operator", pattern=TYPE_PATTERN)


class AlarmRaiseBody(BaseModel):
    model_config = {"extra": "forbid"}
    alarm: AlarmRaise


@router.get("/alarms")
async def list_alarms(
    request: Request,
    principal: Annotated[Principal, Depends(current_principal)],
    state: StateFilter = "active",
    severity: Severity | None = None,
    type: Annotated[str | None, Query(max_length=64)] = None,
    entity: Annotated[str | None, Query(max_length=255)] = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
) -> Json:
    ctx = site_context(request)
    require_this_site(ctx, principal)
    flt = AlarmFilter(
        state=None if state == "all" else state,
        severity=severity.value if severity else None,
        type=type,
        entity=entity,
        limit=limit,
    )
    found = await AlarmRepository(ctx.store).find(flt)
    return Json({"alarms": [alarm_json(a, site=ctx.name) for a in found]})


@router.post("/alarms", status_code=201)
async def raise_alarm(
    request: Request,
    body: AlarmRaiseBody,
    principal: Annotated[Principal, Depends(current_principal)],
) -> Json:
    ctx = site_context(request)
    require_this_site(ctx, principal)
    spec = body.alarm
    alarm, created = await AlarmRepository(ctx.store).raise_alarm(
        type=spec.type,
        severity=spec.severity,
        entity=spec.entity,
        reason=spec.reason,
        now=ctx.clock(),
        origin="operator",
        raised_by=principal.user_name,
    )
    return Json({"alarm": alarm_json(alarm, site=ctx.name)}, status_code=201 if created else 200)


async def _get(request: Request, principal: Principal, alarm_id: str) -> AlarmRecord:
    ctx = site_context(request)
    require_this_site(ctx, principal)
    alarm = await AlarmRepository(ctx.store).get(alarm_id)
    if alarm is None:
        raise NotFound(f"Alarm {alarm_id} could not be found at site {ctx.name}.")
    return alarm


@router.get("/alarms/{alarm_id}")
async def show_alarm(
    request: Request, alarm_id: str, principal: Annotated[Principal, Depends(current_principal)]
) -> Json:
    alarm = await _get(request, principal, alarm_id)
    return Json({"alarm": alarm_json(alarm, site=site_context(request).name)})


@router.post("/alarms/{alarm_id}/clear")
async def clear_alarm(
    request: Request, alarm_id: str, principal: Annotated[Principal, Depends(current_principal)]
) -> Json:
    ctx = site_context(request)
    alarm = await _get(request, principal, alarm_id)
    if not alarm.active:
        raise Conflict(f"Alarm {alarm_id} was already cleared at {iso(alarm.cleared_at)}.")
    cleared = await AlarmRepository(ctx.store).clear(
        alarm_id, now=ctx.clock(), cleared_by=principal.user_name
    )
    return Json({"alarm": alarm_json(cleared, site=ctx.name)})
