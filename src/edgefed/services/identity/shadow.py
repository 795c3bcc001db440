"""Shadow identities: a token from another fleet site for a user this site does not know.

Credentials live only on the original site. When a valid token issued elsewhere in
the fleet reaches this site, the user, the project of its scope and its role
assignments are created here from the token's assertions, idempotently and with the
same predictable IDs, tagged with the issuing site as their origin (DESIGN §5, seed 001).
The authenticator calls this hook at most once per (issuer, user, scope, roles).
"""

from __future__ import annotations

import logging

from edgefed.api.auth import SHADOW_HOOK, Principal
from edgefed.api.context import SiteContext
from edgefed.store.identity import ensure_shadow

log = logging.getLogger("edgefed.identity.shadow")


def install(ctx: SiteContext) -> None:
    async def shadow(principal: Principal) -> None:
        claims = principal.claims
        created = await ensure_shadow(
            ctx.store,
            issuer=principal.issuer,
            user=claims["user"],
            project=claims.get("project"),
            role_names=sorted(principal.role_names),
        )
        if created:
            log.info(
                "created shadow identity of %s (from %s) for project %s",
                principal.user_name,
                principal.issuer,
                principal.project_id,
            )

    ctx.services[SHADOW_HOOK] = shadow
