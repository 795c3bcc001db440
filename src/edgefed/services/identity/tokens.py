"""The /v3/auth routes: issue, validate, check and revoke tokens; catalog and scopes.

The hot paths are in-memory: validation reads only the verified claims (cached by the
authenticator) and the cached catalog; issuing with the token method uses the cached
grant of (user, scope). Revoking writes a revocation event to the store (it survives a
restart) and adds it to the in-memory list every request checks.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from edgefed.api.auth import (
    SUBJECT_TOKEN_HEADER,
    TOKEN_HEADER,
    Principal,
    authenticator,
    current_principal,
)
from edgefed.api.bodies import read_object
from edgefed.api.context import site_context
from edgefed.api.resource import Resource
from edgefed.api.resource.routes import begin
from edgefed.api.responses import Json
from edgefed.api.service import DeclaredRoute
from edgefed.core.errors import BadRequest, Forbidden, NotFound, Unauthorized
from edgefed.services.identity.catalog import token_catalog
from edgefed.services.identity.domains import DOMAIN
from edgefed.services.identity.grants import effective_roles, held_by
from edgefed.services.identity.issuance import (
    authenticate,
    build_claims,
    check_scope_shape,
    requested_target,
    restrict_to_app_credential,
)
from edgefed.services.identity.keystone import KEYSTONE
from edgefed.services.identity.projects import PROJECT
from edgefed.services.identity.revoking import revoke
from edgefed.services.identity.scopes import grant_for
from edgefed.services.identity.state import IdentityState, identity_state, state_for
from edgefed.services.identity.token_body import rendered_body
from edgefed.services.identity.views import collection
from edgefed.store.revocations import RevocationEvent

router = APIRouter(route_class=DeclaredRoute)
JSON = "application/json"


async def _caller(request: Request) -> Principal:
    """``current_principal`` without FastAPI's dependency machinery (for the hot paths)."""
    token = request.headers.get(TOKEN_HEADER)
    if not token:
        raise Unauthorized("The request you have made requires authentication.")
    return await authenticator(request).authenticate(site_context(request), token)


def _nocatalog(request: Request) -> bool:
    return "nocatalog" in request.query_params


@router.get("/v3/auth/tokens")
async def validate_token(request: Request) -> Response:
    """The hottest path of the site: registered first, no dependency injection, no I/O."""
    principal = await _caller(request)
    state = state_for(site_context(request))
    subject = await _subject(request, state, principal)
    content = await rendered_body(state, subject, nocatalog=_nocatalog(request))
    return Response(content=content, media_type=JSON, headers={"X-Subject-Token": subject.token})


@router.post("/v3/auth/tokens", status_code=201)
async def issue_token(request: Request) -> Response:
    state = state_for(site_context(request))
    auth = await read_object(request, KEYSTONE.body, key="auth")
    identity = auth.get("identity")
    if not isinstance(identity, dict):
        raise BadRequest("'identity' is a required property of 'auth'")
    check_scope_shape(auth.get("scope"))
    who = await authenticate(state, identity, authenticator(request))
    target_type, target_id = await requested_target(state, auth.get("scope"), who)
    grant = await grant_for(
        state, user_id=who.user_id, target_type=target_type, target_id=target_id
    )
    roles = grant.roles
    if who.app_credential is not None:
        roles = await restrict_to_app_credential(state, grant, who.app_credential)
    claims = build_claims(state, who=who, grant=grant, target_type=target_type, roles=roles)
    token = state.ctx.signer.sign(claims)
    content = await rendered_body(
        state,
        Principal(token, claims, _names(roles), claims["user"]["id"]),
        nocatalog=_nocatalog(request),
    )
    return Response(
        content=content, status_code=201, media_type=JSON, headers={"X-Subject-Token": token}
    )


def _names(roles: list[dict[str, str]]) -> frozenset[str]:
    return frozenset(r["name"] for r in roles)


async def _subject(request: Request, state: IdentityState, principal: Principal) -> Principal:
    token = request.headers.get(SUBJECT_TOKEN_HEADER)
    if not token:
        raise BadRequest("The X-Subject-Token header is required.")
    try:
        subject = await authenticator(request).authenticate(state.ctx, token)
    except (Unauthorized, Forbidden) as exc:
        raise NotFound(f"Could not find token: {token}.") from exc
    if not principal.is_admin and subject.user_id != principal.user_id:
        raise Forbidden(
            "You are not authorized to perform the requested action: identity:validate_token."
        )
    return subject


@router.head("/v3/auth/tokens")
async def check_token(request: Request) -> Response:
    state = state_for(site_context(request))
    subject = await _subject(request, state, await _caller(request))
    return Response(status_code=200, headers={"X-Subject-Token": subject.token})


@router.delete("/v3/auth/tokens", status_code=204)
async def revoke_token(request: Request) -> Response:
    state = state_for(site_context(request))
    subject = await _subject(request, state, await _caller(request))
    await revoke(
        state,
        RevocationEvent(issued_before=state.ctx.clock(), audit_id=str(subject.claims["jti"])),
    )
    return Response(status_code=204)


@router.get("/v3/auth/catalog")
async def auth_catalog(
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    if not principal.roles:
        raise Forbidden("A catalog cannot be retrieved for an unscoped token.")
    catalog = await token_catalog(state)
    return Json(
        {"catalog": catalog, "links": {"self": f"{state.ctx.public_url}/identity/v3/auth/catalog"}}
    )


async def _scopes(request: Request, resource: Resource[Any, Any], target_type: str) -> Json:
    """The enabled projects (or domains) where the caller holds a role."""
    call = await begin(resource, request, f"get_auth_{resource.collection_key}")
    state = state_for(call.ctx)
    held = await held_by(state, user_id=call.principal.user_id, target_type=target_type)
    found = await resource.repository(call).list(
        filters={"id": {a.target_id for a in held}, "enabled": True}
    )
    return Json(resource.collection(call, [resource.view(r, call) for r in found]))


@router.get("/v3/auth/projects")
async def auth_projects(request: Request) -> Json:
    return await _scopes(request, PROJECT, "project")


@router.get("/v3/auth/domains")
async def auth_domains(request: Request) -> Json:
    return await _scopes(request, DOMAIN, "domain")


@router.get("/v3/auth/system")
async def auth_system(
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    roles = await effective_roles(
        state, user_id=principal.user_id, target_type="system", target_id="all"
    )
    return Json(collection(state, "system", [{"all": True}] if roles else [], path="/auth/system"))
