"""Name → ID resolution for the auth hot path, cached per identity generation.

Clients usually name the scope (``project name + domain``) and the user; resolving
those from memory keeps a token-method request free of database round trips. Only
names that exist are cached (unknown names cannot grow the cache).
"""

from __future__ import annotations

from edgefed.services.identity.state import IdentityState
from edgefed.store.identity import IdentityTable

_MAX_NAMES = 65536


async def id_by_name(
    state: IdentityState, table: IdentityTable, name: str, *, domain_id: str | None
) -> str | None:
    generation = state.generation
    if state.names_generation != generation:
        state.names.clear()
        state.names_generation = generation
    key = (table.name, domain_id or "", name)
    found = state.names.get(key)
    if found is not None:
        return found
    row = await state.repo.find_by_name(table, name, domain_id=domain_id)
    if row is None:
        return None
    if state.generation == generation and len(state.names) < _MAX_NAMES:
        state.names[key] = str(row["id"])
    return str(row["id"])
