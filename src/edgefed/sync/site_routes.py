"""The sync routes other sites call, each request signed by the calling site.

A receiver asks to be served or unregisters (``/sync/receivers``); a source pushes
(``/sync/push``); an accepted receiver pulls one resource again, fetches an image's
blob, or reads this site's progress report as one of its sources. Every route first
checks the signature (``verified_sender``) and then the caller's role: only a
registered source may push, only an accepted receiver may pull or fetch, and each gets
only what concerns it, with the same answer for "missing" and "not marked for you".
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, Response

from edgefed.api.bodies import EDGE_BODY, parse_object
from edgefed.api.responses import Json
from edgefed.api.service import DeclaredRoute
from edgefed.core.errors import BadRequest, Forbidden, NotFound
from edgefed.store.sync import ACCEPTED, KINDS, valid_sha256
from edgefed.sync.peers import verified_sender
from edgefed.sync.progress import DEPTH_HEADER, MAX_DEPTH, tree
from edgefed.sync.state import engine_of

router = APIRouter(route_class=DeclaredRoute)

MAX_PUSH_ITEMS = 5000


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
    body = parse_object(raw, EDGE_BODY)
    try:
        items = body["items"]
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
    doc = parse_object(raw, EDGE_BODY)
    try:
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
        depth = min(int(request.headers.get(DEPTH_HEADER, "0")), MAX_DEPTH)
    except ValueError:
        depth = 0
    return Json(
        await tree(
            engine.ctx,
            engine.repo,
            depth=depth,
            breakers=engine.delivery.breaker_states(),
            inflight=engine.delivery.inflight_counts(),
            for_source=sender,
        )
    )
