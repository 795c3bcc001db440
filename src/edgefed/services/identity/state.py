"""Per-site state of the identity service: its repositories and the hot-path caches.

Caches are keyed by the store's identity generation (bumped on every identity write),
so a change to users, projects, roles, groups or assignments makes them stale at once
without any explicit invalidation call.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import HTTPConnection

from edgefed.api.context import SiteContext, site_context
from edgefed.store.identity import IdentityStore, identity_generation

_BODY_CACHE_SIZE = 4096


@dataclass
class IdentityState:
    ctx: SiteContext
    repos: IdentityStore
    # (user_id, target_type, target_id) -> ScopeGrant, valid for `grants_generation`.
    grants: dict[tuple[str, str, str], Any] = field(default_factory=dict)
    grants_generation: int = -1
    # Role names and implications, valid for `roles_generation`.
    role_graph: Any = None
    roles_generation: int = -1
    # (kind, domain_id, name) -> id of existing records, valid for `names_generation`.
    names: dict[tuple[str, str, str], str] = field(default_factory=dict)
    names_generation: int = -1
    # Rendered catalog, valid for `catalog_key`.
    catalog: list[dict[str, Any]] = field(default_factory=list)
    catalog_key: Any = None
    # Rendered token bodies (bytes) per (token, nocatalog), valid for `bodies_key`.
    bodies: OrderedDict[tuple[str, bool], bytes] = field(default_factory=OrderedDict)
    bodies_key: Any = None

    @property
    def generation(self) -> int:
        return identity_generation(self.ctx.store)

    def remember_body(self, key: tuple[str, bool], body: bytes) -> None:
        self.bodies[key] = body
        if len(self.bodies) > _BODY_CACHE_SIZE:
            self.bodies.popitem(last=False)


async def identity_state(conn: HTTPConnection) -> IdentityState:
    """FastAPI dependency: this site's identity state."""
    return state_for(site_context(conn))


def state_for(ctx: SiteContext) -> IdentityState:
    # Token validation (the hot path) comes here: a lookup, no closure to build.
    state = ctx.slots.get(IdentityState)
    if state is None:
        state = ctx.slots.put(IdentityState(ctx=ctx, repos=IdentityStore(ctx.store)))
    return state
