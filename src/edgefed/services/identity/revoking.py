"""Revocation events: numbered, signed, persisted first (they survive a restart), then
made effective here and spread to the fleet (the revocation list's listeners)."""

from __future__ import annotations

from edgefed.services.identity.state import IdentityState
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


class IdentityRevoker:
    """The identity service's ``api.revocation.Revoker``, wired into the site context."""

    def __init__(self, state: IdentityState):
        self.state = state

    async def revoke(self, event: RevocationEvent) -> None:
        await revoke(self.state, event)

    async def revoke_user(self, user_id: str, *, project_id: str | None = None) -> None:
        await revoke_user(self.state, user_id, project_id=project_id)
