"""Keystone's token body, built from verified claims and the cached catalog.

Validation never touches the database: everything in the body of a token this site
issued is in the signed claims, except the catalog, which is cached. Rendered bodies
are cached per token too, until the catalog changes.
"""

from __future__ import annotations

from typing import Any

from edgefed.api.auth import Principal
from edgefed.api.responses import dumps
from edgefed.services.identity.catalog import token_catalog
from edgefed.services.identity.grants import role_graph
from edgefed.services.identity.state import IdentityState
from edgefed.services.identity.views import isotime


def body_from_claims(
    claims: dict[str, Any], *, catalog: list[dict[str, Any]] | None
) -> dict[str, Any]:
    user = claims["user"]
    token: dict[str, Any] = {
        "methods": claims.get("methods", []),
        "user": {
            "domain": user["domain"],
            "id": user["id"],
            "name": user["name"],
            "password_expires_at": None,
        },
        "audit_ids": [claims["jti"]]
        if claims.get("chain") in (None, claims["jti"])
        else [claims["jti"], claims["chain"]],
        "expires_at": isotime(claims["exp"]),
        "issued_at": isotime(claims["iat"]),
    }
    scoped = False
    if "project" in claims:
        token["project"] = claims["project"]
        token["is_domain"] = False
        scoped = True
    elif "domain" in claims:
        token["domain"] = claims["domain"]
        scoped = True
    elif "system" in claims:
        token["system"] = claims["system"]
        scoped = True
    if scoped:
        token["roles"] = claims.get("roles", [])
        if catalog is not None:
            token["catalog"] = catalog
    if "application_credential" in claims:
        token["application_credential"] = claims["application_credential"]
    return {"token": token}


async def rendered_body(state: IdentityState, principal: Principal, *, nocatalog: bool) -> bytes:
    """The body of ``principal``'s token. A token of another site shows the roles its
    user has *here* (its own role claims mean nothing here), and is not kept."""
    catalog = await token_catalog(state)
    if not principal.local:
        graph = await role_graph(state)
        ids = {name: role_id for role_id, name in graph.names.items()}
        roles = [{"id": ids.get(n, n), "name": n} for n in sorted(principal.roles)]
        claims = {**principal.claims, "roles": roles}
        return dumps(body_from_claims(claims, catalog=None if nocatalog else catalog))
    if state.bodies_key != state.catalog_key:
        state.bodies.clear()
        state.bodies_key = state.catalog_key
    key = (principal.token, nocatalog)
    cached = state.bodies.get(key)
    if cached is not None:
        return cached
    body = dumps(body_from_claims(principal.claims, catalog=None if nocatalog else catalog))
    state.remember_body(key, body)
    return body
