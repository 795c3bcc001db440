"""Resolving a user and a scope to a ``ScopeGrant`` (cached per identity generation).

The checks Keystone makes when it issues a token live here: the user and its domain
are enabled, the target exists and is enabled, and the user holds at least one role on
it (directly or through a group). Failures are 401s with Keystone's messages.
"""

from __future__ import annotations

from edgefed.core.errors import Unauthorized
from edgefed.services.identity.grants import (
    ScopeGrant,
    cached_grant,
    effective_roles,
    remember_grant,
)
from edgefed.services.identity.state import IdentityState
from edgefed.store.identity import DomainRecord, ProjectRecord

UNSCOPED = ("unscoped", "")
SYSTEM_TARGET = "all"


async def _enabled_domain(state: IdentityState, domain_id: str) -> DomainRecord:
    domain = await state.repos.domains.get(id=domain_id)
    if domain is None:
        raise Unauthorized(f"Could not find domain: {domain_id}.")
    if not domain.enabled:
        raise Unauthorized(f"Domain {domain_id} is disabled.")
    return domain


async def grant_for(
    state: IdentityState, *, user_id: str, target_type: str, target_id: str
) -> ScopeGrant:
    """The user, its scope and its effective roles there; 401 when it may not have them."""
    key = (user_id, target_type, target_id)
    grant = cached_grant(state, key)
    if grant is not None:
        return grant
    generation = state.generation
    user = await state.repos.users.get(id=user_id)
    if user is None:
        raise Unauthorized("The request you have made requires authentication.")
    if not user.enabled:
        raise Unauthorized(f"The account is disabled for user: {user_id}.")
    user_domain = await _enabled_domain(state, user.domain_id)
    target: ProjectRecord | DomainRecord | None = None
    target_domain: DomainRecord | None = None
    role_refs: list[dict[str, str]] = []
    if target_type == "project":
        project = await state.repos.projects.get(id=target_id)
        if project is None:
            raise Unauthorized(f"Could not find project: {target_id}.")
        if not project.enabled:
            raise Unauthorized(f"Project {target_id} is disabled.")
        target = project
        target_domain = await _enabled_domain(state, project.domain_id)
    elif target_type == "domain":
        target = await _enabled_domain(state, target_id)
    if target_type != UNSCOPED[0]:
        role_refs = await effective_roles(
            state, user_id=user_id, target_type=target_type, target_id=target_id
        )
        if not role_refs:
            where = "the system" if target_type == "system" else f"{target_type} {target_id}"
            raise Unauthorized(f"User {user_id} has no access to {where}.")
    grant = ScopeGrant(
        user=user,
        user_domain=user_domain,
        target=target,
        target_domain=target_domain,
        roles=role_refs,
    )
    remember_grant(state, key, grant, generation=generation)
    return grant
