"""What a token from another fleet site may do here (``api.authority.Authority``).

The token says who: home site (its issuer), user id and name, the user's domain, the
scope asked for. This site decides what, from what it holds:

- the role assignments of that user here, on that scope, made here or received from a
  sync source, *if* this site's record of the user belongs to the issuer (the user was
  received from it, or is its shadow). A site never speaks for a user it does not own:
  a token from Paris for the id of a Berlin user gets none of that user's roles at
  Berlin, and acts under an id of its own, so nothing of the Berlin user's is reachable;
- the mapping rules its operator set (``store.mappings``): "users of domain D, or the
  user U, from site S get role R on this target".

Roles claimed in the token are ignored. A user disabled here is refused. The answer is
cached by the authenticator per token until the identity generation changes (any
identity write, a received push, a mapping rule), so the hot path has no database trip.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from edgefed.api.authority import ForeignGrant
from edgefed.core.errors import Unauthorized
from edgefed.core.ids import predictable_id
from edgefed.services.identity.grants import direct_role_ids, role_graph
from edgefed.services.identity.state import IdentityState
from edgefed.store.identity.mappings import MappingRules
from edgefed.store.mappings import MappingRule

log = logging.getLogger("edgefed.identity.authority")


def foreign_user_id(issuer: str, user_id: str) -> str:
    """The id this site gives the user ``user_id`` of ``issuer`` when it holds a user of
    that id that ``issuer`` does not own."""
    return predictable_id("foreign-user", f"{issuer}/{user_id}", domain_id="")


def scope_of(claims: Mapping[str, Any]) -> tuple[str, str] | None:
    if claims.get("project"):
        return "project", str(claims["project"]["id"])
    if claims.get("domain"):
        return "domain", str(claims["domain"]["id"])
    if claims.get("system"):
        return "system", "all"
    return None


def rule_matches(rule: MappingRule, claims: Mapping[str, Any], scope: tuple[str, str]) -> bool:
    user = claims["user"]
    domain = user.get("domain") or {}
    return (
        rule.site in ("*", claims["iss"])
        and rule.user_domain in ("*", domain.get("id"), domain.get("name"))
        and rule.user_name in ("*", user.get("name"))
        and (rule.target_type, rule.target_id) == scope
    )


class IdentityAuthority:
    def __init__(self, state: IdentityState):
        self.state = state
        self._rules: list[MappingRule] = []
        self._rules_generation = -1

    def generation(self) -> int:
        return self.state.generation

    async def rules(self) -> list[MappingRule]:
        generation = self.state.generation
        if self._rules_generation != generation:
            rules = list(await MappingRules(self.state.ctx.store).list())
            if self.state.generation == generation:
                self._rules, self._rules_generation = rules, generation
            return rules
        return self._rules

    async def foreign_grant(self, claims: Mapping[str, Any]) -> ForeignGrant:
        state = self.state
        issuer = str(claims["iss"])
        user = claims["user"]
        user_id = str(user["id"])
        local = await state.repos.users.get(id=user_id)
        owned = local is not None and local.origin == issuer
        if owned and local is not None and not local.enabled:
            raise Unauthorized(f"The account is disabled for user: {user_id}.")
        here = user_id if local is None or owned else foreign_user_id(issuer, user_id)
        scope = scope_of(claims)
        if scope is None or not await self._target_enabled(scope):
            return ForeignGrant(user_id=here, roles=frozenset())
        role_ids: set[str] = set()
        if owned:
            role_ids |= await direct_role_ids(
                state, user_id=user_id, target_type=scope[0], target_id=scope[1]
            )
        role_ids |= {r.role_id for r in await self.rules() if rule_matches(r, claims, scope)}
        graph = await role_graph(state)
        names = frozenset(graph.names[r] for r in graph.expand(role_ids) if r in graph.names)
        if names and local is None:
            await self._shadow(issuer, user)
        return ForeignGrant(user_id=here, roles=names)

    async def _target_enabled(self, scope: tuple[str, str]) -> bool:
        kind, target_id = scope
        if kind == "system":
            return True
        repos = self.state.repos
        found = await (repos.projects if kind == "project" else repos.domains).get(id=target_id)
        return found is not None and found.enabled

    async def _shadow(self, issuer: str, user: Mapping[str, Any]) -> None:
        """Bookkeeping (seed 001): the user becomes visible here, owned by its home site,
        so an operator can see who acted and grant it roles. Never authority by itself."""
        try:
            created = await self.state.repos.users.ensure_shadow(issuer=issuer, user=user)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("no shadow for a user of %s: %s", issuer, exc)
            return
        if created:
            log.info("shadow of user %s (from %s) created", user.get("name"), issuer)
