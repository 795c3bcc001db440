"""Operators' sync routes (admin tokens): marks, registrations, receivers, requests, progress.

The receiver's operator registers with a source and the source's operator accepts the
receiver (both operators, docs/sync.md); marks say what travels where; a request asks
the sources for one resource now; progress shows this site and the tree below it.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.policy import require_admin
from edgefed.api.responses import Json
from edgefed.api.service import DeclaredRoute
from edgefed.core.errors import BadRequest, Conflict, NotFound, Unavailable
from edgefed.core.settings import SITE_NAME_RE
from edgefed.store.sync import ACCEPTED, KINDS
from edgefed.sync.bodies import MarkBody, RegistrationBody, RequestBody
from edgefed.sync.peers import PULL_PATH, signed_call
from edgefed.sync.progress import MAX_DEPTH, tree
from edgefed.sync.state import engine_of

router = APIRouter(route_class=DeclaredRoute)
# A registration that failed with these never reached the source: it is not one. (After
# a timeout, the source may have recorded it, and may push: it stays one.)
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
RECEIVERS_PATH = "/edge/v1/sync/receivers"  # where a receiver (un)registers at a source
SYNC_CAPABILITY = "sync"


@router.get("/sync")
async def summary(request: Request, principal: Principal = Depends(current_principal)) -> Json:
    require_admin(principal, "sync:show")
    engine = engine_of(request)
    return Json(
        {
            "sync": {
                "site": engine.ctx.name,
                "kinds": sorted(KINDS),
                "sources": await engine.repo.list_sources(),
                "receivers": await engine.repo.list_receivers(),
            }
        }
    )


@router.post("/sync/marks", status_code=201)
async def create_mark(
    body: MarkBody, request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    require_admin(principal, "sync:mark")
    engine = engine_of(request)
    spec = body.mark
    mark = await engine.mark(kind=spec.kind, key=spec.id, to=spec.to)
    return Json(
        {"mark": {"kind": mark.kind, "id": mark.key, "to": mark.targets, "origin": mark.origin}},
        status_code=201,
    )


@router.get("/sync/marks")
async def list_marks(request: Request, principal: Principal = Depends(current_principal)) -> Json:
    require_admin(principal, "sync:list_marks")
    marks = await engine_of(request).repo.list_marks()
    return Json(
        {
            "marks": [
                {"kind": m.kind, "id": m.key, "to": m.targets, "origin": m.origin} for m in marks
            ]
        }
    )


@router.delete("/sync/marks/{kind}/{key:path}", status_code=204)
async def delete_mark(
    kind: str, key: str, request: Request, principal: Principal = Depends(current_principal)
) -> Response:
    require_admin(principal, "sync:unmark")
    engine = engine_of(request)
    if not await engine.repo.delete_mark(kind, key):
        raise NotFound(f"no sync mark on {kind} {key}")
    await engine.refresh_marks()
    return Response(status_code=204)


@router.post("/sync/registrations", status_code=201)
async def register_with_source(
    body: RegistrationBody, request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    """Ask ``source`` to serve this site. The source records the request; it starts
    the first full sync once its operator accepts it (or at once if it accepts this
    site ahead: ``sync_accept``, or an earlier ``edgefed sync accept``)."""
    require_admin(principal, "sync:register")
    engine = engine_of(request)
    ctx = engine.ctx
    source = body.registration.source
    if source == ctx.name:
        raise BadRequest(f"{source} is this site; a site cannot receive from itself")
    entry = ctx.fleet.entries.get(source) if ctx.fleet is not None else None
    if entry is None or not entry.active:
        raise NotFound(f"site {source} is not an active member of this fleet")
    if SYNC_CAPABILITY not in entry.capabilities:
        raise Conflict(f"site {source} does not advertise the {SYNC_CAPABILITY!r} capability")
    known = await engine.is_source(source)
    # Before asking: a source that accepts at once pushes before it answers.
    await engine.add_source(source)
    try:
        r = await signed_call(ctx, source, "POST", RECEIVERS_PATH, {})
    except Exception as exc:
        if not known and isinstance(exc, NOT_SENT):
            await engine.remove_source(source)
        raise Unavailable(f"site {source} could not be reached to register: {exc!r}") from exc
    if r.status_code not in (201, 202):
        if not known:
            await engine.remove_source(source)
        raise Unavailable(f"site {source} refused the registration ({r.status_code}): {r.text}")
    answer = _json_or_text(r.content).get("registration", {})
    accepted = r.status_code == 201
    registration: dict[str, Any] = {
        "source": source,
        "receiver": ctx.name,
        "status": "active" if accepted else "pending",
        "queued": answer.get("queued", 0) if accepted else 0,
    }
    if not accepted:
        registration["message"] = (
            f"{source} has recorded the request; an admin of {source} accepts it with "
            f"'edgefed sync accept {ctx.name}' (POST /edge/v1/sync/receivers/{ctx.name}/accept)"
        )
    return Json({"registration": registration}, status_code=201)


@router.delete("/sync/registrations/{source}", status_code=204)
async def unregister_from_source(
    source: str, request: Request, principal: Principal = Depends(current_principal)
) -> Response:
    """Stop receiving from ``source``: the source forgets this receiver and what it had
    queued for it, then this site refuses its pushes. Data received so far stays and is
    released: no longer locked, this site's own (docs/sync.md). A source that is no
    longer an active fleet member is forgotten here only; an active one that cannot be
    reached is a 503 and nothing changes (try again)."""
    require_admin(principal, "sync:unregister")
    engine = engine_of(request)
    ctx = engine.ctx
    if not await engine.is_source(source):
        raise NotFound(f"this site ({ctx.name}) is not registered with {source}")
    entry = ctx.fleet.entries.get(source) if ctx.fleet is not None else None
    if entry is not None and entry.active:
        try:
            r = await signed_call(ctx, source, "DELETE", RECEIVERS_PATH)
        except Exception as exc:
            raise Unavailable(f"site {source} could not be reached to unregister: {exc!r}") from exc
        if r.status_code not in (204, 404):
            raise Unavailable(f"site {source} refused to unregister ({r.status_code}): {r.text}")
    await engine.remove_source(source)
    return Response(status_code=204)


@router.get("/sync/registrations")
async def list_registrations(
    request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    require_admin(principal, "sync:list_registrations")
    repo = engine_of(request).repo
    pending = [r["name"] for r in await repo.registrations() if r["state"] != ACCEPTED]
    return Json(
        {
            "sources": await repo.list_sources(),
            "receivers": await repo.list_receivers(),
            "pending": pending,
        }
    )


@router.get("/sync/receivers")
async def list_receiver_registrations(
    request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    """Every site that asked to receive from this site (or was accepted ahead), with
    its state: pending (waiting for this site's operator), approved, accepted."""
    require_admin(principal, "sync:list_receivers")
    rows = await engine_of(request).repo.registrations()
    return Json({"receivers": [_registration_view(r) for r in rows]})


@router.post("/sync/receivers/{name}/accept")
async def accept_receiver(
    name: str, request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    """Accept ``name``'s request to receive from this site: the first full sync starts.
    A site that has not asked yet is approved ahead (its request is accepted at once)."""
    require_admin(principal, "sync:accept")
    engine = engine_of(request)
    if not SITE_NAME_RE.match(name):
        raise BadRequest(f"{name!r} is not a site name")
    if name == engine.ctx.name:
        raise BadRequest(f"{name} is this site; a site cannot receive from itself")
    state, queued = await engine.accept_receiver(name)
    row = next(r for r in await engine.repo.registrations() if r["name"] == name)
    return Json({"receiver": {**_registration_view(row), "state": state, "queued": queued}})


@router.delete("/sync/receivers/{name}", status_code=204)
async def refuse_receiver(
    name: str, request: Request, principal: Principal = Depends(current_principal)
) -> Response:
    """Refuse a pending request, withdraw an approval, or stop serving a receiver (what
    it received stays there, locked, until it unregisters: docs/sync.md)."""
    require_admin(principal, "sync:refuse")
    engine = engine_of(request)
    if not await engine.remove_receiver(name):
        raise NotFound(f"site {name} has no sync registration at {engine.ctx.name}")
    return Response(status_code=204)


def _registration_view(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": row["name"],
        "state": row["state"],
        "registered_at": row["registered_at"],
        "requested_at": row["requested_at"],
        "accepted_at": row["accepted_at"],
    }


@router.post("/sync/requests", status_code=202)
async def request_resource(
    body: RequestBody, request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    """Ask a source (default: every source of this site) to send one resource now."""
    require_admin(principal, "sync:request")
    engine = engine_of(request)
    spec = body.request
    if spec.kind not in KINDS:
        raise BadRequest(f"unknown resource kind {spec.kind!r}")
    sources = [spec.source] if spec.source else await engine.repo.list_sources()
    if not sources:
        raise Conflict("this site is registered with no sync source")
    answers: dict[str, Any] = {}
    for source in sources:
        try:
            r = await signed_call(
                engine.ctx, source, "POST", PULL_PATH, {"kind": spec.kind, "id": spec.id}
            )
            answers[source] = {"status": r.status_code, **_json_or_text(r.content)}
        except Exception as exc:
            answers[source] = {"status": 503, "error": repr(exc)}
    if not any(a["status"] == 202 for a in answers.values()):
        raise NotFound(f"no source has {spec.kind} {spec.id} for this site", sources=answers)
    return Json(
        {"request": {"kind": spec.kind, "id": spec.id, "sources": answers}}, status_code=202
    )


@router.get("/sync/progress")
async def progress(
    request: Request,
    kind: str | None = None,
    id: str | None = None,
    depth: int = Query(default=MAX_DEPTH, ge=0, le=MAX_DEPTH),
    principal: Principal = Depends(current_principal),
) -> Json:
    """This site's progress and, ``depth`` levels down, its receivers' (0: this site only)."""
    require_admin(principal, "sync:progress")
    engine = engine_of(request)
    report = await tree(
        engine.ctx, engine.repo, depth=depth, breakers=engine.delivery.breaker_states(),
        inflight=engine.delivery.inflight_counts(), kind=kind, key=id,
    )  # fmt: skip
    return Json({"progress": report})


def _json_or_text(raw: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(raw)
        return doc if isinstance(doc, dict) else {"body": doc}
    except ValueError:
        return {"body": raw.decode(errors="replace")[:200]}
