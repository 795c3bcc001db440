"""Revocation events held in memory, so checking a token costs no database round trip."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from edgefed.store.revocations import RevocationEvent


class RevocationList:
    def __init__(self, events: Iterable[RevocationEvent] = ()):
        self._events: list[RevocationEvent] = list(events)
        self.generation = 0

    def add(self, event: RevocationEvent) -> None:
        self._events.append(event)
        self.generation += 1

    def __len__(self) -> int:
        return len(self._events)

    def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        if not self._events:
            return False
        issued = claims.get("iat", 0.0)
        user_id = claims.get("user", {}).get("id")
        project = claims.get("project")
        project_id = project.get("id") if isinstance(project, dict) else None
        domain = claims.get("domain")
        domain_id = domain.get("id") if isinstance(domain, dict) else None
        for ev in self._events:
            if issued > ev.issued_before:
                continue
            if ev.user_id is not None and ev.user_id != user_id:
                continue
            if ev.project_id is not None and ev.project_id != project_id:
                continue
            if ev.domain_id is not None and ev.domain_id != domain_id:
                continue
            if ev.audit_id is not None and ev.audit_id != claims.get("jti"):
                continue
            if ev.audit_chain_id is not None and ev.audit_chain_id != claims.get("chain"):
                continue
            if ev.issuer is not None and ev.issuer != claims.get("iss"):
                continue
            return True
        return False


class Revoker(Protocol):
    """What the identity service offers other rooms: make a revocation effective here
    (stored first, so it survives a restart) and spread it to the fleet."""

    async def revoke(self, event: RevocationEvent) -> None: ...

    async def revoke_user(self, user_id: str, *, project_id: str | None = None) -> None:
        """Every token of the user (on ``project_id`` only, when given) issued until now."""
        ...
