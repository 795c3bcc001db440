"""Effective roles of a user on a scope, cached in memory per identity generation.

Effective = assigned to the user or to one of its groups, on that exact target, with
implied roles expanded transitively (admin → member → reader). Issuing a token with the
token method is then a dict lookup, not a database round trip; any identity write bumps
the generation and the next lookup recomputes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgefed.services.identity.state import IdentityState
from edgefed.store.identity import AssignmentRecord, DomainRecord, ProjectRecord, UserRecord


@dataclass(frozen=True, slots=True)
class RoleGraph:
    """Every role (id -> name) and the implication edges, for expansion."""

    names: dict[str, str]
    implies: dict[str, tuple[str, ...]]

    def expand(self, role_ids: set[str]) -> set[str]:
        seen = set(role_ids)
        todo = list(role_ids)
        while todo:
            for implied in self.implies.get(todo.pop(), ()):
                if implied not in seen:
                    seen.add(implied)
                    todo.append(implied)
        return seen

    def refs(self, role_ids: set[str]) -> list[dict[str, str]]:
        known = [rid for rid in role_ids if rid in self.names]
        return sorted(
            ({"id": rid, "name": self.names[rid]} for rid in known), key=lambda r: r["name"]
        )


@dataclass(frozen=True, slots=True)
class ScopeGrant:
    """What a token for (user, scope) asserts: the user, the target and the roles."""

    user: UserRecord
    user_domain: DomainRecord
    target: ProjectRecord | DomainRecord | None
    target_domain: DomainRecord | None
    roles: list[dict[str, str]]


async def role_graph(state: IdentityState) -> RoleGraph:
    generation = state.generation
    if state.role_graph is not None and state.roles_generation == generation:
        graph: RoleGraph = state.role_graph
        return graph
    all_roles = await state.repos.roles.list()
    edges: dict[str, list[str]] = {}
    for prior, implied in await state.repos.implications.all():
        edges.setdefault(prior, []).append(implied)
    graph = RoleGraph(
        names={r.id: r.name for r in all_roles},
        implies={k: tuple(v) for k, v in edges.items()},
    )
    state.role_graph, state.roles_generation = graph, generation
    return graph


async def held_by(
    state: IdentityState, *, user_id: str, target_type: str, target_id: str | None = None
) -> list[AssignmentRecord]:
    """The assignments of the user or one of its groups on the target (on every target
    of that type when ``target_id`` is None)."""
    repos = state.repos
    actors = [("user", user_id)] + [("group", g) for g in await repos.members.group_ids_of(user_id)]
    return await repos.assignments.list(actors=actors, target_type=target_type, target_id=target_id)


async def direct_role_ids(
    state: IdentityState, *, user_id: str, target_type: str, target_id: str
) -> set[str]:
    """Roles assigned on the target to the user or one of its groups (not expanded)."""
    held = await held_by(state, user_id=user_id, target_type=target_type, target_id=target_id)
    return {a.role_id for a in held}


async def effective_roles(
    state: IdentityState, *, user_id: str, target_type: str, target_id: str
) -> list[dict[str, str]]:
    graph = await role_graph(state)
    direct = await direct_role_ids(
        state, user_id=user_id, target_type=target_type, target_id=target_id
    )
    return graph.refs(graph.expand(direct))


def cached_grant(state: IdentityState, key: tuple[str, str, str]) -> ScopeGrant | None:
    if state.grants_generation != state.generation:
        state.grants.clear()
        state.grants_generation = state.generation
        return None
    grant: Any = state.grants.get(key)
    return grant if isinstance(grant, ScopeGrant) else None


def remember_grant(
    state: IdentityState, key: tuple[str, str, str], grant: ScopeGrant, *, generation: int
) -> None:
    """Keep ``grant`` computed at ``generation``, unless a write happened meanwhile."""
    if generation != state.generation:
        return
    if state.grants_generation != generation:
        state.grants.clear()
        state.grants_generation = generation
    state.grants[key] = grant
