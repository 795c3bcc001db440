"""Tokens signed directly with a site's key, for tests of services other than identity."""

from __future__ import annotations

from typing import Any

from edgefed.api.context import SiteContext
from edgefed.core.ids import DEFAULT_DOMAIN_ID, predictable_id
from edgefed.core.tokens import new_audit_id

ROLE_CHAIN = {"admin": ["admin", "member", "reader"], "member": ["member", "reader"]}


def forge_token(
    ctx: SiteContext,
    *,
    user: str = "admin",
    project: str | None = "admin",
    role: str = "admin",
    ttl: float = 3600.0,
) -> str:
    now = ctx.clock()
    dom = {"id": DEFAULT_DOMAIN_ID, "name": "Default"}
    claims: dict[str, Any] = {
        "iss": ctx.name,
        "iat": now,
        "exp": now + ttl,
        "jti": new_audit_id(),
        "methods": ["password"],
        "user": {"id": predictable_id("user", user), "name": user, "domain": dom},
        "roles": [
            {"id": predictable_id("role", r, domain_id=""), "name": r}
            for r in ROLE_CHAIN.get(role, [role])
        ],
    }
    claims["chain"] = claims["jti"]
    if project is not None:
        claims["project"] = {
            "id": predictable_id("project", project),
            "name": project,
            "domain": dom,
        }
    return ctx.signer.sign(claims)
