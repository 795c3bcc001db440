"""Keystone's default policy for the identity API, and the sync lock.

- admin (the ``admin`` role on any scope): everything;
- a user may read itself, change its own password, list its own projects and groups,
  and manage its own application credentials;
- anyone authenticated may read roles, a domain by ID and the catalog entities (regions,
  services, endpoints), which clients need to resolve names;
- everything else (creating, changing or deleting projects, users, groups, roles,
  assignments, the catalog) needs admin: 403 naming the refused action.

A row received from a sync source (``origin`` set) may only change at that source.
"""

from __future__ import annotations

from typing import Any

from edgefed.api.auth import Principal
from edgefed.core.errors import Forbidden, Locked


def authorize(principal: Principal, action: str, *, self_user_id: str | None = None) -> None:
    """Admin passes; ``self_user_id`` lets a user act on itself."""
    if principal.is_admin:
        return
    if self_user_id is not None and principal.user_id == self_user_id:
        return
    raise Forbidden(f"You are not authorized to perform the requested action: identity:{action}.")


def ensure_local(row: dict[str, Any], what: str) -> None:
    origin = row.get("origin")
    if origin:
        raise Locked(
            f"{what} {row.get('name', row.get('id'))} is managed by sync source {origin}; "
            f"change it there.",
            source=origin,
        )
