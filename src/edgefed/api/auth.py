"""Authentication: who is calling, from the ``X-Auth-Token`` header.

A token is valid when its signature verifies with the issuer's pinned key, it has not
expired and no revocation event matches it. Verified claims are cached per token
string (bounded), so a hot token costs a dict lookup plus the revocation check.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection

from edgefed.api.context import SiteContext, site_context
from edgefed.core.errors import EdgefedError, Unauthorized
from edgefed.core.tokens import verify_token

TOKEN_HEADER = "x-auth-token"  # noqa: S105 - a header name
SUBJECT_TOKEN_HEADER = "x-subject-token"  # noqa: S105 - a header name
_CACHE_SIZE = 4096
SHADOW_HOOK = "identity.shadow"
log = logging.getLogger("edgefed.auth")


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller, as asserted by a valid token."""

    token: str
    claims: dict[str, Any]

    @property
    def user_id(self) -> str:
        return str(self.claims["user"]["id"])

    @property
    def user_name(self) -> str:
        return str(self.claims["user"]["name"])

    @property
    def user_domain_id(self) -> str:
        return str(self.claims["user"]["domain"]["id"])

    @property
    def project_id(self) -> str | None:
        project = self.claims.get("project")
        return str(project["id"]) if project else None

    @property
    def project_domain_id(self) -> str | None:
        project = self.claims.get("project")
        return str(project["domain"]["id"]) if project else None

    @property
    def domain_id(self) -> str | None:
        domain = self.claims.get("domain")
        return str(domain["id"]) if domain else None

    @property
    def system(self) -> bool:
        return bool(self.claims.get("system"))

    @property
    def issuer(self) -> str:
        return str(self.claims["iss"])

    @property
    def role_names(self) -> frozenset[str]:
        return frozenset(r["name"] for r in self.claims.get("roles", ()))

    def has_role(self, name: str) -> bool:
        return name in self.role_names

    @property
    def is_admin(self) -> bool:
        """Keystone's default policy: the ``admin`` role on any scope is cloud admin."""
        return "admin" in self.role_names

    @property
    def expires_at(self) -> float:
        return float(self.claims["exp"])


class Authenticator:
    def __init__(self) -> None:
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        # (issuer, user, project, roles) whose shadow identity exists here already.
        self._shadowed: set[tuple[str, str, str | None, frozenset[str]]] = set()

    async def ensure_shadow(self, ctx: SiteContext, principal: Principal) -> None:
        """A token from another fleet site: make its user known here (once)."""
        key = (principal.issuer, principal.user_id, principal.project_id, principal.role_names)
        if key in self._shadowed:
            return
        hook = ctx.services.get(SHADOW_HOOK)
        if hook is None:
            return
        try:
            await hook(principal)
        except EdgefedError as exc:
            log.warning("no shadow identity for %s: %s", principal.user_name, exc.message)
            return
        if len(self._shadowed) > _CACHE_SIZE:
            self._shadowed.clear()
        self._shadowed.add(key)

    def validate(self, ctx: SiteContext, token: str) -> Principal:
        now = ctx.clock()
        claims = self._cache.get(token)
        if claims is None:
            claims = verify_token(token, ctx.keyring.lookup, now=now)
            self._cache[token] = claims
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        else:
            if claims["exp"] <= now:
                self._cache.pop(token, None)
                raise Unauthorized("The token has expired.")
            if ctx.keyring.lookup(claims["iss"]) is None:
                raise Unauthorized(f"The token was issued by an unknown site ({claims['iss']!r}).")
        if ctx.revocations.is_revoked(claims):
            raise Unauthorized("The token has been revoked.")
        return Principal(token=token, claims=claims)

    def forget(self, token: str) -> None:
        self._cache.pop(token, None)


def authenticator(conn: HTTPConnection) -> Authenticator:
    auth: Authenticator = conn.app.state.authenticator
    return auth


async def current_principal(conn: HTTPConnection) -> Principal:
    """FastAPI dependency: the caller, or 401."""
    cached = conn.scope.get("edgefed.principal")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    token = conn.headers.get(TOKEN_HEADER)
    if not token:
        raise Unauthorized("The request you have made requires authentication.")
    ctx = site_context(conn)
    auth = authenticator(conn)
    principal = auth.validate(ctx, token)
    if principal.issuer != ctx.name:
        await auth.ensure_shadow(ctx, principal)
    conn.scope["edgefed.principal"] = principal
    return principal
