"""Name → ID resolution for the auth hot path, cached per identity generation.

Clients usually name the scope (``project name + domain``) and the user; resolving
those from memory keeps a token-method request free of database round trips. Only
names that exist are cached (unknown names cannot grow the cache).
"""

from __future__ import annotations

from typing import Literal

from edgefed.services.identity.state import IdentityState

_MAX_NAMES = 65536
Named = Literal["domain", "project", "user"]


async def id_by_name(
    state: IdentityState, kind: Named, name: str, *, domain_id: str | None
) -> str | None:
    """The id of the ``kind`` named ``name`` (in ``domain_id``, for a project or a user)."""
    generation = state.generation
    if state.names_generation != generation:
        state.names.clear()
        state.names_generation = generation
    key = (kind, domain_id or "", name)
    found = state.names.get(key)
    if found is not None:
        return found
    repos = state.repos
    repo = (
        repos.domains if kind == "domain" else repos.projects if kind == "project" else repos.users
    )
    filters = (
        {"name": name}
        if domain_id is None or kind == "domain"
        else {"name": name, "domain_id": domain_id}
    )
    records = await repo.list(filters=filters, limit=1)
    if not records:
        return None
    found = records[0].id
    if state.generation == generation and len(state.names) < _MAX_NAMES:
        state.names[key] = found
    return found
