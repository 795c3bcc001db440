"""/v3/users/{user_id}/application_credentials: a user's own delegated credentials.

Created from a project-scoped token, bound to that project; the roles are the token's
(or a subset the caller names: any other role is refused). The secret is shown once,
in the create response, and stored as an argon2id hash. A token issued with the
credential carries only its roles, and only while the user still holds them.

Access rules (Keystone's per-credential allow list of service, path and method) are
refused at creation with a 400 naming the field: this site does not enforce them on the
requests made with the credential's tokens, and a credential that looks restricted but
is not would be worse than none (docs/identity.md).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from edgefed.api.auth import Principal, current_principal
from edgefed.api.responses import Json
from edgefed.core.errors import Forbidden, NotFound, ValidationFailed
from edgefed.core.ids import new_hex_id
from edgefed.services.identity.common import must_get
from edgefed.services.identity.grants import role_graph
from edgefed.services.identity.guard import authorize
from edgefed.services.identity.passwords import hash_secret, new_app_credential_secret
from edgefed.services.identity.revoking import revoke
from edgefed.services.identity.schemas import AppCredentialCreateBody
from edgefed.services.identity.state import IdentityState, identity_state
from edgefed.services.identity.views import collection, links
from edgefed.store.identity import app_credentials, users
from edgefed.store.revocations import RevocationEvent

router = APIRouter()
BASE = "/v3/users/{user_id}/application_credentials"


def _parse_expiry(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        when = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValidationFailed(
            f"Invalid input for field 'expires_at': {raw!r} is not an ISO 8601 time",
            field="expires_at",
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.timestamp()


def credential_view(
    state: IdentityState, row: dict[str, Any], role_names: dict[str, str]
) -> dict[str, Any]:
    expires = row["expires_at"]
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "user_id": row["user_id"],
        "project_id": row["project_id"],
        "roles": [
            {"id": rid, "name": role_names.get(rid, ""), "domain_id": None}
            for rid in row["role_ids"]
        ],
        "unrestricted": row["unrestricted"],
        "expires_at": dt.datetime.fromtimestamp(expires, dt.UTC)
        .replace(tzinfo=None)
        .isoformat(timespec="microseconds")
        if expires is not None
        else None,
        "access_rules": row["access_rules"],
        "links": links(state, f"/users/{row['user_id']}/application_credentials/{row['id']}"),
    }


@router.post(BASE, status_code=201)
async def create_app_credential(
    user_id: str,
    body: AppCredentialCreateBody,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    if principal.user_id != user_id:
        raise Forbidden(
            "You are not authorized to perform the requested action: "
            "identity:create_application_credential (only for yourself)."
        )
    restricted = principal.claims.get("application_credential", {}).get("restricted")
    if restricted:
        raise Forbidden("A restricted application credential cannot create another one.")
    project_id = principal.project_id
    if project_id is None:
        raise Forbidden("Creating an application credential needs a project-scoped token.")
    await must_get(state, users, user_id, "user")
    c = body.application_credential
    if c.access_rules:
        raise ValidationFailed(
            "Invalid input for field 'access_rules': application credential access rules are "
            "not supported on this site (they would not be enforced); create the credential "
            "without them, with only the roles it needs",
            field="access_rules",
        )
    token_roles = {r["id"]: r["name"] for r in principal.claims.get("roles", [])}
    by_name = {name: rid for rid, name in token_roles.items()}
    if not c.roles:  # none named (the CLI sends []): all of the token's roles
        role_ids = list(token_roles)
    else:
        role_ids = []
        for ref in c.roles:
            rid = ref.id or (by_name.get(ref.name) if ref.name else None)
            if rid is None or rid not in token_roles:
                raise Forbidden(
                    f"Role {ref.id or ref.name} is not assigned to the user on this project."
                )
            role_ids.append(rid)
    expires_at = _parse_expiry(c.expires_at)
    if expires_at is not None and expires_at <= state.ctx.clock():
        raise ValidationFailed("expires_at must be in the future", field="expires_at")
    secret = c.secret or new_app_credential_secret()
    row = await state.repo.create(
        app_credentials,
        {
            "id": new_hex_id(),
            "name": c.name,
            "user_id": user_id,
            "project_id": project_id,
            "secret_hash": await hash_secret(secret),
            "description": c.description or "",
            "role_ids": sorted(set(role_ids)),
            "unrestricted": c.unrestricted,
            "expires_at": expires_at,
            "access_rules": [],
        },
        what="application_credential",
    )
    graph = await role_graph(state)
    view = credential_view(state, row, graph.names)
    view["secret"] = secret
    return Json({"application_credential": view}, status_code=201)


@router.get(BASE)
async def list_app_credentials(
    user_id: str,
    request: Request,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "list_application_credentials", self_user_id=user_id)
    await must_get(state, users, user_id, "user")
    rows = await state.repo.list_rows(
        app_credentials, filters={"user_id": user_id, "name": request.query_params.get("name")}
    )
    graph = await role_graph(state)
    return Json(
        collection(
            state,
            "application_credentials",
            (credential_view(state, r, graph.names) for r in rows),
            path=f"/users/{user_id}/application_credentials",
        )
    )


async def _owned(state: IdentityState, user_id: str, credential_id: str) -> dict[str, Any]:
    row = await state.repo.get(app_credentials, credential_id)
    if row is None or row["user_id"] != user_id:
        raise NotFound(f"Could not find application credential: {credential_id}.")
    return row


@router.get(BASE + "/{credential_id}")
async def get_app_credential(
    user_id: str,
    credential_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    authorize(principal, "get_application_credential", self_user_id=user_id)
    row = await _owned(state, user_id, credential_id)
    graph = await role_graph(state)
    return Json({"application_credential": credential_view(state, row, graph.names)})


@router.delete(BASE + "/{credential_id}", status_code=204)
async def delete_app_credential(
    user_id: str,
    credential_id: str,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Response:
    authorize(principal, "delete_application_credential", self_user_id=user_id)
    await _owned(state, user_id, credential_id)
    await state.repo.delete(app_credentials, credential_id)
    # Keystone: the credential's tokens die with it, here and at every fleet site.
    await revoke(state, RevocationEvent(issued_before=state.ctx.clock(), app_cred_id=credential_id))
    return Response(status_code=204)
