"""Revocation events: persisted first (they survive a restart), then made effective."""

from __future__ import annotations

from edgefed.services.identity.state import IdentityState
from edgefed.store.revocations import RevocationEvent, RevocationRepository


async def revoke(state: IdentityState, event: RevocationEvent) -> None:
    await RevocationRepository(state.ctx.store).add(event)
    state.ctx.revocations.add(event)


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
