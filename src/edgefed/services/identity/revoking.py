"""Revocation events: numbered, signed, persisted first (they survive a restart), then
made effective here and spread to the fleet (the revocation list's listeners).

The identity resources revoke in their ``after_write``: a user's tokens when it is
disabled, deleted or changes its password, when it leaves a group or loses a grant
(then on that project only), when its group or a role it holds is deleted; the tokens
scoped to a project or a domain when it is disabled or deleted; a credential's tokens
when it is deleted.
"""

from __future__ import annotations

from collections.abc import Iterable

from edgefed.api.resource import Call
from edgefed.services.identity.state import IdentityState, state_for
from edgefed.store.revocations import RevocationEvent, RevocationRepository


async def revoke(state: IdentityState, event: RevocationEvent) -> RevocationEvent:
    ctx = state.ctx
    key = ctx.signer.private_key
    signed = await RevocationRepository(ctx.store).add_local(
        event,
        origin=ctx.name,
        floor=ctx.revocations.floor_of(ctx.name),
        now=ctx.clock(),
        sign=lambda e: e.signed_by(key),
    )
    ctx.revocations.add(signed, local=True)
    return signed


async def revoke_user(state: IdentityState, user_id: str, *, project_id: str | None = None) -> None:
    """Every token of the user (on ``project_id`` only, when given) issued until now."""
    await revoke(
        state,
        RevocationEvent(issued_before=state.ctx.clock(), user_id=user_id, project_id=project_id),
    )


async def revoke_users(
    state: IdentityState, user_ids: Iterable[str], *, project_id: str | None = None
) -> None:
    for user_id in user_ids:
        await revoke_user(state, user_id, project_id=project_id)


async def revoke_scope(
    state: IdentityState, *, project_id: str | None = None, domain_id: str | None = None
) -> None:
    """Every token scoped to the project (or the domain) issued until now."""
    event = RevocationEvent(
        issued_before=state.ctx.clock(), project_id=project_id, domain_id=domain_id
    )
    await revoke(state, event)


def revoke_later(call: Call, user_ids: Iterable[str]) -> None:
    """Users whose tokens the delete under way takes roles from (a group's members, a
    role's holders): read before the delete, which removes what says who they are, and
    revoked by ``revoke_pending`` once it is done."""
    call.request.state.identity_revoke_users = list(user_ids)


async def revoke_pending(call: Call) -> None:
    user_ids: list[str] = getattr(call.request.state, "identity_revoke_users", [])
    await revoke_users(state_for(call.ctx), user_ids)


class IdentityRevoker:
    """The identity service's ``api.revocation.Revoker``, wired into the site context."""

    def __init__(self, state: IdentityState):
        self.state = state

    async def revoke(self, event: RevocationEvent) -> None:
        await revoke(self.state, event)

    async def revoke_user(self, user_id: str, *, project_id: str | None = None) -> None:
        await revoke_user(self.state, user_id, project_id=project_id)
