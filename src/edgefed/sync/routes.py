"""HTTP surface of the sync engine under /edge/v1/sync.

Operators (admin tokens): marks, registrations, image requests, progress.
Sites (signed requests, edgefed.sync.peers): receivers, push, blobs, pull, reports.
"""

from __future__ import annotations

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
from edgefed.store.sync_rows import KINDS
from edgefed.sync.peers import signed_call, verified_sender
from edgefed.sync.progress import MAX_DEPTH, tree
from edgefed.sync.state import engine_of

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
    """Register this site as a receiver of ``source``; the source starts a full sync."""
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
    if r.status_code != 201:
        raise Unavailable(f"site {source} refused the registration ({r.status_code}): {r.text}")
    answer = r.json().get("registration", {})
    return Json(
        {
            "registration": {
                "source": source,
                "receiver": ctx.name,
                "status": "active",
                "queued": answer.get("queued", 0),
            }
        },
        status_code=201,
    )


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
    return Json({"sources": await repo.list_sources(), "receivers": await repo.list_receivers()})


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
async def accept_receiver(request: Request) -> Json:
    engine = engine_of(request)
    sender, _ = await verified_sender(request, engine.ctx)
    queued = await engine.add_receiver(sender)
    return Json(
        {"registration": {"source": engine.ctx.name, "receiver": sender, "queued": queued}},
        status_code=201,
    )


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
    results = await engine.repo.apply_batch(
        source=sender, items=items, has_blob=engine.fetcher.has_blob, now=ctx.clock()
    )
    engine.note_applied(items, results, origin=sender)
    if any(i.get("kind") == "image" for i in items):
        engine.fetcher.wake.set()
    rejected = [r for r in results if r["status"] == "rejected"]
    status = 200 if not rejected else max(int(r["code"]) for r in rejected)
    return Json({"results": results}, status_code=status if status < 500 else 422)


@router.get("/sync/blobs/{sha256}")
async def blob(sha256: str, request: Request) -> Response:
    engine = engine_of(request)
    sender, _ = await verified_sender(request, engine.ctx)
    if sender not in await engine.repo.list_receivers():
        raise Forbidden(f"site {sender} is not a sync receiver of {engine.ctx.name}")
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise BadRequest("a blob is named by its sha256 in lowercase hex")
    path = engine.fetcher.blobs.path(sha256)
    if not path.exists():
        raise NotFound(f"no blob {sha256} at {engine.ctx.name}")
    return FileResponse(path, media_type="application/octet-stream")


@router.post("/sync/pull", status_code=202)
async def pull(request: Request) -> Json:
    engine = engine_of(request)
    sender, raw = await verified_sender(request, engine.ctx)
    if sender not in await engine.repo.list_receivers():
        raise Forbidden(f"site {sender} is not a sync receiver of {engine.ctx.name}")
    try:
        doc = orjson.loads(raw)
        kind, key = str(doc["kind"]), str(doc["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BadRequest('a pull body is {"kind": ..., "id": ...}') from exc
    if kind not in KINDS:
        raise BadRequest(f"unknown resource kind {kind!r}")
    queued = await engine.pull_for(sender, kind=kind, key=key)
    if not queued:
        raise NotFound(f"{kind} {key} does not exist at {engine.ctx.name}")
    return Json({"queued": queued}, status_code=202)


@router.get("/sync/progress/report")
async def progress_report(request: Request) -> Json:
    engine = engine_of(request)
    await verified_sender(request, engine.ctx)
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
        )
    )


def site_of(request: Request) -> str:
    return site_context(request).name
