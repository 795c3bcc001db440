"""HTTP surface of the sites service under /edge/v1."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.bodies import EDGE_BODY, parse_object
from edgefed.api.context import site_context
from edgefed.api.policy import region_roles, require_admin
from edgefed.api.responses import Json
from edgefed.api.service import DeclaredRoute
from edgefed.api.sitecalls import check_signed, verified_site
from edgefed.core.errors import BadRequest, Conflict, NotFound, Unauthorized
from edgefed.core.fleet import SiteEntry
from edgefed.core.fleet_rules import check_incoming, enrollment_for, keys_of
from edgefed.core.tokens import public_key_from_b64
from edgefed.services.sites.enrollment import (
    EnrollmentToken,
    new_secret,
    secret_matches,
)
from edgefed.services.sites.gossip import answer_body, note_rtt, parse_digest
from edgefed.services.sites.registry import Registry
from edgefed.services.sites.revocations import parse_digest as parse_revocation_digest
from edgefed.store.fleet import EnrollmentRecord

router = APIRouter(route_class=DeclaredRoute)

MAX_ENROLLMENT_SECONDS = 7 * 86400


def registry_of(request: Request) -> Registry:
    return site_context(request).slots.require(Registry)


class EnrollmentCreate(BaseModel):
    model_config = {"extra": "forbid"}
    # The site the token enrolls: it is good for that name only, and only once.
    name: str = Field(min_length=1, max_length=63, pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,62}$")
    expires_in: int = Field(default=3600, ge=60, le=MAX_ENROLLMENT_SECONDS)
    # Whether the new site may enroll and revoke sites in its turn.
    authority: bool = False


class EnrollmentBody(BaseModel):
    model_config = {"extra": "forbid"}
    enrollment: EnrollmentCreate


class JoinWithToken(BaseModel):
    model_config = {"extra": "forbid"}
    token: str = Field(min_length=8, max_length=4096)


@router.get("/site")
async def site_info(request: Request) -> Json:
    """This site's identity card: public, so a joining site can check the key it pinned."""
    reg = registry_of(request)
    return Json({"site": reg.self_entry.to_json()})


@router.get("/ping", include_in_schema=False)
async def ping() -> Response:
    return Response(status_code=204)


@router.get("/fleet/sites")
async def list_sites(request: Request, principal: Principal = Depends(current_principal)) -> Json:
    reg = registry_of(request)
    entries = [e for e in reg.entries() if _in_regions(reg, principal, e.name)]
    return Json({"sites": [_with_health(reg, e) for e in entries]})


def _in_regions(reg: Registry, principal: Principal, name: str) -> bool:
    """Whether the caller sees the site ``name``: a region operator (a region:<name>
    role and no admin, as services/fleet/access.py has it) sees the sites of its
    regions only, here as on every fleet API."""
    regions = region_roles(principal)
    if not regions or principal.is_admin:
        return True
    return reg.view.labels_of(name).get("region", "") in regions


def _with_health(reg: Registry, entry: SiteEntry) -> dict[str, Any]:
    body = entry.to_json()
    body["self"] = entry.name == reg.ctx.name
    body["rtt_ms"] = reg.view.rtt_ms(reg.ctx.name, entry.name)
    return body


@router.get("/fleet/sites/{name}")
async def show_site(
    name: str, request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    reg = registry_of(request)
    entry = reg.view.entries.get(name)
    # A site outside a region operator's regions is not there for it.
    if entry is None or not _in_regions(reg, principal, name):
        raise NotFound(f"site {name} is not in the fleet registry")
    return Json({"site": _with_health(reg, entry)})


@router.get("/fleet/revocations")
async def revocation_state(
    request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    """How far this site holds each site's revocation events, when it last caught up
    with the fleet, and the latest events that arrived (with when)."""
    require_admin(principal, "fleet:show_revocations")
    revocations = site_context(request).revocations
    age = revocations.synced_age()
    return Json(
        {
            "revocations": {
                "events": len(revocations),
                "digest": revocations.digest(),
                "synced_seconds_ago": None if age is None else round(age, 3),
                "recent": [
                    {"origin": o, "seq": n, "received_at": t} for o, n, t in revocations.arrivals
                ],
            }
        }
    )


@router.delete("/fleet/sites/{name}", status_code=204)
async def revoke_site(
    name: str, request: Request, principal: Principal = Depends(current_principal)
) -> Response:
    require_admin(principal, "fleet:revoke_site")
    await registry_of(request).revoke(name)
    return Response(status_code=204)


@router.post("/fleet/enrollments", status_code=201)
async def create_enrollment(
    body: EnrollmentBody, request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    require_admin(principal, "fleet:create_enrollment")
    reg = registry_of(request)
    ctx = reg.ctx
    spec = body.enrollment
    reg.require_authority("enroll sites")
    existing = reg.view.entries.get(spec.name)
    if spec.name == ctx.name or (existing is not None and existing.active):
        raise Conflict(
            f"site {spec.name} is already an active member of the fleet (revoke it first to "
            "enroll a new machine under that name)"
        )
    token_id, secret, secret_hash = new_secret()
    now = ctx.clock()
    record = EnrollmentRecord(
        id=token_id,
        secret_hash=secret_hash,
        created_at=now,
        expires_at=now + spec.expires_in,
        created_by=principal.user_id,
        used_at=None,
        used_by=None,
        site_name=spec.name,
        authority=spec.authority,
    )
    await reg.repo.add_enrollment(record)
    token = EnrollmentToken(
        issuer=ctx.name,
        issuer_url=ctx.public_url,
        issuer_key=reg.public_key,
        token_id=token_id,
        secret=secret,
        site_name=spec.name,
    )
    return Json(
        {
            "enrollment": {
                "id": token_id,
                "token": token.encode(),
                "site": spec.name,
                "authority": spec.authority,
                "expires_at": record.expires_at,
            }
        },
        status_code=201,
    )


@router.post("/fleet/join")
async def accept_join(request: Request) -> Json:
    """A new site presents a one-time token and proves it holds the key it announces."""
    reg = registry_of(request)
    ctx = reg.ctx
    raw = await request.body()
    payload = parse_object(raw, EDGE_BODY)
    try:
        token_id = str(payload["token_id"])[:64]
        secret = str(payload["secret"])[:256]
        entry = SiteEntry.from_json(payload["site"])
    except (ValueError, KeyError, TypeError) as exc:
        raise BadRequest("a join request needs token_id, secret and site") from exc
    record = await reg.repo.get_enrollment(token_id)
    now = ctx.clock()
    if record is None or not secret_matches(secret, record.secret_hash):
        raise Unauthorized("unknown enrollment token")
    if record.expires_at <= now:
        raise Unauthorized("the enrollment token has expired")
    if record.site_name and entry.name != record.site_name:
        raise Unauthorized(
            f"the enrollment token was made for site {record.site_name}, not {entry.name}"
        )
    check_signed(
        request, ctx, key=public_key_from_b64(entry.public_key), sender=entry.name, body=raw
    )
    existing = reg.view.entries.get(entry.name)
    retry = (
        record.used_at is not None
        and (record.used_by, record.used_key) == (entry.name, entry.public_key)
        and existing is not None
        and existing.active
        and existing.public_key == entry.public_key
    )
    if retry:  # the same join again (its answer was lost): the same answer
        return Json(_join_answer(reg))
    if record.used_at is not None:
        raise Unauthorized("the enrollment token was already used")
    if entry.name == ctx.name:
        raise Conflict(f"{entry.name} is the name of the enrolling site itself")
    if existing is not None and existing.active:
        raise Conflict(f"a site named {entry.name} is already an active member of the fleet")
    if existing is not None and entry.public_key in keys_of(existing):
        raise Unauthorized(
            f"site {entry.name} was revoked with this key; enroll the machine with a new key"
        )
    reg.require_authority("enroll sites")
    floor = existing.revocation.at + 0.001 if existing and existing.revocation else 0.0
    enrollment = enrollment_for(
        entry.name,
        entry.public_key,
        by=ctx.name,
        authority=record.authority,
        at=max(now, floor),
        signer=ctx.signer.private_key,
    )
    entry = dataclasses.replace(entry, enrollment=enrollment, rotations=(), revocation=None)
    check_incoming(entry, local=existing, known=reg.view.entries)
    if not await reg.repo.consume_enrollment_and_put(token_id, now=now, entry=entry):
        raise Unauthorized("the enrollment token was already used")
    reg.view.apply([entry])
    return Json(_join_answer(reg))


def _join_answer(reg: Registry) -> dict[str, Any]:
    """The registry, and the revocation events the new site must know from the start."""
    return {
        "sites": [e.to_json() for e in reg.entries()],
        "revocation_events": reg.feed.missing_for({}),
    }


@router.post("/site/join")
async def join_fleet(
    body: JoinWithToken, request: Request, principal: Principal = Depends(current_principal)
) -> Json:
    """Ask this site to join a fleet with a token created on any fleet site."""
    require_admin(principal, "fleet:join")
    reg = registry_of(request)
    entries = await reg.join_with(EnrollmentToken.decode(body.token))
    return Json({"sites": [e.to_json() for e in entries]})


@router.post("/fleet/gossip")
async def gossip(request: Request) -> Response:
    reg = registry_of(request)
    ctx = reg.ctx
    raw = await request.body()
    sender = verified_site(request, ctx, raw)
    payload = parse_object(raw, EDGE_BODY)
    try:
        incoming = [SiteEntry.from_json(e) for e in payload.get("sites") or []]
        digest = parse_digest(payload["digest"]) if "digest" in payload else None
        revocations = parse_revocation_digest(payload.get("revocations"))
        note_rtt(reg, sender, payload)
    except (ValueError, TypeError, AttributeError) as exc:
        raise BadRequest(f"malformed gossip body: {exc}") from exc
    reg.note_seen(sender, None)
    if incoming:
        await reg.merge(incoming)
    if "revocation_events" in payload:
        await reg.feed.accept(payload["revocation_events"])
        if digest is None:  # a push after our answer: we now hold what the peer held
            ctx.revocations.note_synced()
    if digest is not None and reg.feed.lacks_nothing(revocations):
        ctx.revocations.note_synced()
    return Response(answer_body(reg, digest, revocations), media_type="application/json")
