"""HTTP surface of the sync engine under /edge/v1/sync.

Operators (admin tokens): marks, registrations, receivers (accept, refuse), image
requests, progress, conflicts.
Sites (signed requests, edgefed.sync.peers): receivers, push, blobs, pull, reports.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import FileResponse, Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.context import site_context
from edgefed.api.policy import require_admin
from edgefed.api.responses import Json
from edgefed.core.errors import BadRequest, Conflict, Forbidden, NotFound, Unavailable
from edgefed.core.settings import SITE_NAME_RE
from edgefed.store.sync import ACCEPTED
from edgefed.store.sync_rows import KINDS, valid_sha256
from edgefed.sync.peers import signed_call, verified_sender
from edgefed.sync.progress import MAX_DEPTH, conflict_view, tree
from edgefed.sync.state import SyncEngine, engine_of

log = logging.getLogger("edgefed.sync")

router = APIRouter()
RECEIVERS_PATH = "/edge/v1/sync/receivers"  # where a receiver (un)registers at a source

SYNC_CAPABILITY = "sync"
MAX_PUSH_ITEMS = 5000


class MarkSpec(BaseModel):
    model_config = {"extra": "forbid"}
    kind: str = Field(min_length=1, max_length=32)
    id: str = Field(min_length=1, max_length=512)
    to: str = Field(min_length=1, max_length=1024)


class MarkBody(BaseModel):
    model_config = {"extra": "forbid"}
    mark: MarkSpec


class RegistrationSpec(BaseModel):
    model_config = {"extra": "forbid"}
    source: str = Field(min_length=1, max_length=64)


class RegistrationBody(BaseModel):
    model_config = {"extra": "forbid"}
    registration: RegistrationSpec


class RequestSpec(BaseModel):
    model_config = {"extra": "forbid"}
    kind: str = Field(default="image", min_length=1, max_length=32)
    id: str = Field(min_length=1, max_length=512)
    source: str | None = Field(default=None, max_length=64)


class RequestBody(BaseModel):
    model_config = {"extra": "forbid"}
    request: RequestSpec


class ResolveSpec(BaseModel):
    model_config = {"extra": "forbid"}
    source: str = Field(min_length=1, max_length=64)
    kind: str = Field(min_length=1, max_length=32)
    id: str = Field(min_length=1, max_length=512)
    # adopt: the row held here becomes the source's (its version replaces it);
    # dismiss: keep the row held here and forget the clash;
    # neither: the local row was deleted or renamed, ask the source for its version again.
    adopt: bool = False
    dismiss: bool = False


class ResolveBody(BaseModel):
    model_config = {"extra": "forbid"}
    resolve: ResolveSpec


# ---- operators -----------------------------------------------------------------------


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
    await engine.add_source(source)
    try:
        r = await signed_call(ctx, source, "POST", RECEIVERS_PATH, {})
    except Exception as exc:
        raise Unavailable(f"site {source} could not be reached to register: {exc!r}") from exc
    if r.status_code not in (201, 202):
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
            r = await signed_call(
                engine.ctx, source, "POST", "/edge/v1/sync/pull", {"kind": kind, "id": key}
            )
            statuses[f"{kind} {key}"] = r.status_code
        except Exception as exc:
            log.info("asking %s for %s %s again failed: %r", source, kind, key, exc)
            statuses[f"{kind} {key}"] = 503
    return statuses


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
                engine.ctx, source, "POST", "/edge/v1/sync/pull", {"kind": spec.kind, "id": spec.id}
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
        engine.ctx, engine.repo, depth=depth, breakers=_breakers(request),
        inflight=_inflight(request), kind=kind, key=id,
    )  # fmt: skip
    return Json({"progress": report})


def _breakers(request: Request) -> dict[str, str]:
    return {t: w.breaker.state for t, w in engine_of(request).delivery.workers.items()}


def _inflight(request: Request) -> dict[str, int]:
    return {t: len(w.inflight) for t, w in engine_of(request).delivery.workers.items()}


def _json_or_text(raw: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(raw)
        return doc if isinstance(doc, dict) else {"body": doc}
    except ValueError:
        return {"body": raw.decode(errors="replace")[:200]}


# ---- sites ---------------------------------------------------------------------------


@router.delete("/sync/receivers", status_code=204)
async def drop_receiver(request: Request) -> Response:
    """A receiver unregisters (signed by the receiver itself)."""
    engine = engine_of(request)
    sender, _ = await verified_sender(request, engine.ctx)
    if not await engine.remove_receiver(sender):
        raise NotFound(f"site {sender} is not a sync receiver of {engine.ctx.name}")
    return Response(status_code=204)


@router.post("/sync/receivers", status_code=201)
async def request_registration(request: Request) -> Json:
    """A receiver asks to be served (signed by the receiver itself): 201 when accepted
    (the first full sync is queued), 202 while it waits for this site's operator."""
    engine = engine_of(request)
    sender, _ = await verified_sender(request, engine.ctx)
    state, queued = await engine.request_receiver(sender)
    return Json(
        {"registration": {"source": engine.ctx.name, "receiver": sender, "state": state,
                          "queued": queued}},
        status_code=201 if state == ACCEPTED else 202,
    )  # fmt: skip


@router.post("/sync/push")
async def push(request: Request) -> Json:
    engine = engine_of(request)
    ctx = engine.ctx
    sender, raw = await verified_sender(request, ctx)
    if not await engine.is_source(sender):
        raise Forbidden(f"site {sender} is not a sync source of {ctx.name} (register first)")
    try:
        items = orjson.loads(raw)["items"]
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise TypeError
    except (ValueError, KeyError, TypeError) as exc:
        raise BadRequest('a push body is {"items": [{kind, key, version, op, row}, ...]}') from exc
    if len(items) > MAX_PUSH_ITEMS:
        raise BadRequest(f"at most {MAX_PUSH_ITEMS} items per push")
    outcome = await engine.receiver.apply_batch(
        source=sender, items=items, has_blob=engine.fetcher.has_blob, now=ctx.clock()
    )
    results = outcome.results
    engine.note_applied(items, results, origin=sender)
    # Committed: now make the tokens this site issued to users the push disabled or
    # took rights from ineffective (stored first, so a crash right here loses nothing
    # but this; the source pushes a newer version again only on a newer change).
    await engine.revoke(outcome.revocations)
    if any(r["status"] == "applied" and r["kind"] == "image" for r in results):
        engine.fetcher.wake.set()
    if outcome.conflicts:
        engine.telemetry.wake.set()
    refused = [r for r in results if r["status"] in ("rejected", "conflict")]
    status = 200 if not refused else max(int(r["code"]) for r in refused)
    return Json({"results": results}, status_code=status if status < 500 else 422)


@router.get("/sync/blobs/{sha256}")
async def blob(sha256: str, request: Request) -> Response:
    """The data of an image marked for the (accepted) receiver asking, by its sha256."""
    engine = engine_of(request)
    sender, _ = await verified_sender(request, engine.ctx)
    if not valid_sha256(sha256):
        raise BadRequest("a blob is named by its sha256: 64 lowercase hex digits")
    if sender not in await engine.repo.list_receivers():
        raise Forbidden(f"site {sender} is not an accepted sync receiver of {engine.ctx.name}")
    path = engine.fetcher.blobs.path(sha256)
    # The same answer whether the blob is missing or only not marked for the asker.
    if not await engine.serves_blob(sender, sha256) or not path.is_file():
        raise NotFound(f"no blob {sha256} for {sender} at {engine.ctx.name}")
    return FileResponse(path, media_type="application/octet-stream")


@router.post("/sync/pull", status_code=202)
async def pull(request: Request) -> Json:
    """An accepted receiver asks for one resource marked for it (and its children)."""
    engine = engine_of(request)
    sender, raw = await verified_sender(request, engine.ctx)
    if sender not in await engine.repo.list_receivers():
        raise Forbidden(f"site {sender} is not an accepted sync receiver of {engine.ctx.name}")
    try:
        doc = orjson.loads(raw)
        kind, key = doc["kind"], doc["id"]
        if not isinstance(kind, str) or not isinstance(key, str) or not 0 < len(key) <= 512:
            raise TypeError
    except (ValueError, KeyError, TypeError) as exc:
        raise BadRequest('a pull body is {"kind": ..., "id": ...}') from exc
    if kind not in KINDS:
        raise BadRequest(f"unknown resource kind {kind[:40]!r}")
    queued = await engine.pull_for(sender, kind=kind, key=key)
    if not queued:  # the same answer whether it is missing or only not marked for the asker
        raise NotFound(f"no {kind} {key} for {sender} at {engine.ctx.name}")
    return Json({"queued": queued}, status_code=202)


@router.get("/sync/progress/report")
async def progress_report(request: Request) -> Json:
    """This site's report for one of its sources: what that source delivered here."""
    engine = engine_of(request)
    sender, _ = await verified_sender(request, engine.ctx)
    if not await engine.is_source(sender):
        raise Forbidden(f"site {sender} is not a sync source of {engine.ctx.name}")
    try:
        depth = min(int(request.headers.get("x-edgefed-sync-depth", "0")), MAX_DEPTH)
    except ValueError:
        depth = 0
    return Json(
        await tree(
            engine.ctx,
            engine.repo,
            depth=depth,
            breakers=_breakers(request),
            inflight=_inflight(request),
            for_source=sender,
        )
    )


def site_of(request: Request) -> str:
    return site_context(request).name
