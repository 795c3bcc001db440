"""Authentication: who is calling, from the ``X-Auth-Token`` header; and what they may do.

A token is valid when its signature verifies with the issuer's pinned key, it has not
expired and no revocation event matches it. Verified claims are cached per token
string (bounded), so a hot token costs a dict lookup plus the revocation check.

Authority is local (docs/fleet-trust.md). A token this site issued carries the roles
this site computed when it issued it (role changes revoke it). A token from another
fleet site proves who its user is, nothing more: its roles here come from
``SiteContext.authority`` (this site's assignments and mapping rules), cached per
token until what they depend on changes. Its role claims are never read.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection

from edgefed.api.context import SiteContext, site_context
from edgefed.core.errors import Forbidden, Unauthorized
from edgefed.core.tokens import verify_token

TOKEN_HEADER = "x-auth-token"  # noqa: S105 - a header name
SUBJECT_TOKEN_HEADER = "x-subject-token"  # noqa: S105 - a header name
_CACHE_SIZE = 4096
log = logging.getLogger("edgefed.auth")


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller: who a valid token says they are, and what they may do here."""

    token: str
    claims: dict[str, Any]
    # Effective role names at this site.
    roles: frozenset[str]
    # The user's id at this site (see ``api.authority.ForeignGrant``).
    user_id: str
    # Whether this site issued the token.
    local: bool = True

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
        return self.roles

    def has_role(self, name: str) -> bool:
        return name in self.roles

    @property
    def is_admin(self) -> bool:
        """Keystone's default policy: the ``admin`` role on any scope is cloud admin."""
        return "admin" in self.roles

    @property
    def expires_at(self) -> float:
        return float(self.claims["exp"])


def _claimed_roles(claims: dict[str, Any]) -> frozenset[str]:
    return frozenset(r["name"] for r in claims.get("roles", ()))


def _scoped(claims: dict[str, Any]) -> bool:
    return bool(claims.get("project") or claims.get("domain") or claims.get("system"))


def _scope_name(claims: dict[str, Any]) -> str:
    if claims.get("project"):
        return f"project {claims['project'].get('name')}"
    if claims.get("domain"):
        return f"domain {claims['domain'].get('name')}"
    return "system scope"


class Authenticator:
    def __init__(self) -> None:
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        # Foreign tokens: token -> (authority generation, principal).
        self._foreign: OrderedDict[str, tuple[int, Principal]] = OrderedDict()

    def verify(self, ctx: SiteContext, token: str) -> dict[str, Any]:
        """The claims of a valid token (signature, expiry, issuer, revocations), or 401."""
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
        return claims

    def validate(self, ctx: SiteContext, token: str) -> Principal:
        """A token this site issued, as its principal; 401 for any other token (use
        ``authenticate`` where tokens of other sites are welcome)."""
        claims = self.verify(ctx, token)
        if claims["iss"] != ctx.name:
            raise Unauthorized(
                f"This call takes tokens issued by {ctx.name} only (this one is from "
                f"{claims['iss']})."
            )
        return Principal(
            token=token, claims=claims, roles=_claimed_roles(claims), user_id=claims["user"]["id"]
        )

    async def authenticate(self, ctx: SiteContext, token: str) -> Principal:
        """The principal of any valid fleet token; roles of a foreign one decided here."""
        claims = self.verify(ctx, token)
        if claims["iss"] == ctx.name:
            return Principal(
                token=token,
                claims=claims,
                roles=_claimed_roles(claims),
                user_id=claims["user"]["id"],
            )
        authority = ctx.authority
        if authority is None:
            raise Unauthorized("This site does not accept tokens of other sites yet.")
        ctx.revocations.check_fresh(claims["iss"])
        generation = authority.generation()
        cached = self._foreign.get(token)
        if cached is not None and cached[0] == generation:
            return cached[1]
        grant = await authority.foreign_grant(claims)
        if not grant.roles and _scoped(claims):
            raise Forbidden(
                f"{claims['user']['name']} (a user of {claims['iss']}) has no role at "
                f"{ctx.name} on the token's {_scope_name(claims)}."
            )
        principal = Principal(
            token=token, claims=claims, roles=grant.roles, user_id=grant.user_id, local=False
        )
        if authority.generation() == generation:
            self._foreign[token] = (generation, principal)
            if len(self._foreign) > _CACHE_SIZE:
                self._foreign.popitem(last=False)
        return principal

    def forget(self, token: str) -> None:
        self._cache.pop(token, None)
        self._foreign.pop(token, None)


def authenticator(conn: HTTPConnection) -> Authenticator:
    auth: Authenticator = conn.app.state.authenticator
    return auth


async def principal_of(conn: HTTPConnection) -> Principal:
    """The caller, or 401 (kept on the request once known)."""
    cached = conn.scope.get("edgefed.principal")
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    token = conn.headers.get(TOKEN_HEADER)
    if not token:
        raise Unauthorized("The request you have made requires authentication.")
    principal = await authenticator(conn).authenticate(site_context(conn), token)
    conn.scope["edgefed.principal"] = principal
    return principal


async def current_principal(conn: HTTPConnection) -> Principal:
    """FastAPI dependency: the caller, or 401."""
    return await principal_of(conn)
