"""GET /v3/role_assignments: filters, ``effective`` expansion and ``include_names``.

Filters: ``user.id``, ``group.id``, ``role.id``, ``scope.project.id``, ``scope.domain.id``,
``scope.system``. ``effective`` replaces group assignments by one entry per member
(with a ``membership`` link) and adds the implied roles (with a ``prior_role`` link), as
Keystone does; ``include_names`` adds names and domains to every reference. Admin only;
a user may list its own (``user.id`` = itself).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from edgefed.api.resource import Call, Filter
from edgefed.services.identity.grants import role_graph
from edgefed.services.identity.keystone import (
    KeystonePolicy,
    KeystoneResource,
    itself,
    present_flag,
)
from edgefed.services.identity.state import IdentityState, state_for
from edgefed.store.identity import AssignmentRecord, IdentityStore


@dataclass(frozen=True, slots=True)
class Entry:
    """One assignment as listed: stored, or derived (a group member's, an implied role)."""

    actor_type: str
    actor_id: str
    target_type: str
    target_id: str
    role_id: str
    assignment_path: str
    membership_group: str | None = None
    prior_role: str | None = None


@dataclass
class Names:
    """What ``include_names`` shows, read once per request: id -> (name, domain id)."""

    users: dict[str, tuple[str, str]] = field(default_factory=dict)
    groups: dict[str, tuple[str, str]] = field(default_factory=dict)
    projects: dict[str, tuple[str, str]] = field(default_factory=dict)
    domains: dict[str, str] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Listed:
    entry: Entry
    names: Names | None


def _path(a: AssignmentRecord) -> str:
    actor = f"{a.actor_type}s/{a.actor_id}/roles/{a.role_id}"
    if a.target_type == "system":
        return f"/system/{actor}"
    return f"/{a.target_type}s/{a.target_id}/{actor}"


async def _names(repos: IdentityStore, entries: Sequence[Entry]) -> Names:
    users = {e.actor_id for e in entries if e.actor_type == "user"}
    groups = {e.actor_id for e in entries if e.actor_type == "group"}
    projects = {e.target_id for e in entries if e.target_type == "project"}
    return Names(
        users={u.id: (u.name, u.domain_id) for u in await repos.users.list(filters={"id": users})},
        groups={
            g.id: (g.name, g.domain_id) for g in await repos.groups.list(filters={"id": groups})
        },
        projects={
            p.id: (p.name, p.domain_id) for p in await repos.projects.list(filters={"id": projects})
        },
        domains={d.id: d.name for d in await repos.domains.list()},
        roles={r.id: r.name for r in await repos.roles.list()},
    )


def _scope(call: Call) -> tuple[str | None, str | None]:
    q = call.query
    if q.get("scope.project.id"):
        return "project", q["scope.project.id"]
    if q.get("scope.domain.id"):
        return "domain", q["scope.domain.id"]
    if q.get("scope.system"):
        return "system", "all"
    return None, None


async def _entries(state: IdentityState, call: Call) -> list[Entry]:
    """The assignments the query asks for; ``effective``: group members' and implied."""
    q, repos = call.query, state.repos
    user_id, group_id = q.get("user.id"), q.get("group.id")
    effective = present_flag(q.get("effective"))
    actors: list[tuple[str, str]] | None = None
    if user_id:
        actors = [("user", user_id)]
        if effective:
            actors += [("group", g) for g in await repos.members.group_ids_of(user_id)]
    elif group_id:
        if effective:  # Keystone: effective assignments never name a group
            return []
        actors = [("group", group_id)]
    target_type, target_id = _scope(call)
    held = await repos.assignments.list(actors=actors, target_type=target_type, target_id=target_id)
    entries: list[Entry] = []
    for a in held:
        base = Entry(a.actor_type, a.actor_id, a.target_type, a.target_id, a.role_id, _path(a))
        if not (effective and a.actor_type == "group"):
            entries.append(base)
            continue
        entries += [
            replace(base, actor_type="user", actor_id=m.id, membership_group=a.actor_id)
            for m in await repos.users.in_group(a.actor_id)
            if user_id is None or m.id == user_id
        ]
    if effective:
        entries = await _with_implied(state, entries)
    role_id = q.get("role.id")
    return [e for e in entries if e.role_id == role_id] if role_id else entries


async def _with_implied(state: IdentityState, entries: list[Entry]) -> list[Entry]:
    graph = await role_graph(state)
    expanded: list[Entry] = []
    seen: set[tuple[str, str, str, str, str]] = set()
    for e in entries:
        for rid in [e.role_id, *sorted(graph.expand({e.role_id}) - {e.role_id})]:
            key = (e.actor_type, e.actor_id, e.target_type, e.target_id, rid)
            if key not in seen:
                seen.add(key)
                prior = None if rid == e.role_id else e.role_id
                expanded.append(replace(e, role_id=rid, prior_role=prior))
    return expanded


def _ref(found: tuple[str, str] | None, ref_id: str, names: Names | None) -> dict[str, Any]:
    """A user, group or project: its id, and with names its name and domain."""
    if names is None or found is None:
        return {"id": ref_id}
    name, domain_id = found
    domain = {"id": domain_id, "name": names.domains.get(domain_id, "")}
    return {"id": ref_id, "name": name, "domain": domain}


def _named(found: str | None, ref_id: str, names: Names | None) -> dict[str, Any]:
    """A role or a domain: its id, and with names its name."""
    if names is None or found is None:
        return {"id": ref_id}
    return {"id": ref_id, "name": found}


class RoleAssignment(KeystoneResource[Listed, Any]):
    key = "role_assignment"
    collection_key = "role_assignments"
    path = "/v3/role_assignments"
    verbs = frozenset({"list"})
    access = KeystonePolicy(own={"list": lambda call, id: itself(call, call.query.get("user.id"))})
    filters = {
        name: Filter(description=text)
        for name, text in (
            ("user.id", "Only this user's (with effective: also through its groups)."),
            ("group.id", "Only this group's."),
            ("role.id", "Only this role."),
            ("scope.project.id", "Only on this project."),
            ("scope.domain.id", "Only on this domain."),
            ("scope.system", "Only on the system."),
            ("effective", "Group members' and implied roles instead of group assignments."),
            ("include_names", "Names and domains in every reference."),
        )
    }

    def repository(self, call: Call) -> IdentityStore:
        return state_for(call.ctx).repos

    async def records(self, call: Call, repo: IdentityStore) -> Sequence[Listed]:
        entries = await _entries(state_for(call.ctx), call)
        names = (
            await _names(repo, entries) if present_flag(call.query.get("include_names")) else None
        )
        return [Listed(e, names) for e in entries]

    def view(self, listed: Listed, call: Call) -> dict[str, Any]:
        e, names = listed.entry, listed.names
        out: dict[str, Any] = {"role": _named(names.roles.get(e.role_id) if names else None,
                                              e.role_id, names)}  # fmt: skip
        if e.actor_type == "user":
            out["user"] = _ref(names.users.get(e.actor_id) if names else None, e.actor_id, names)
        else:
            out["group"] = _ref(names.groups.get(e.actor_id) if names else None, e.actor_id, names)
        if e.target_type == "project":
            found = names.projects.get(e.target_id) if names else None
            out["scope"] = {"project": _ref(found, e.target_id, names)}
        elif e.target_type == "domain":
            found_domain = names.domains.get(e.target_id) if names else None
            out["scope"] = {"domain": _named(found_domain, e.target_id, names)}
        else:
            out["scope"] = {"system": {"all": True}}
        links = {"assignment": self.url(call, e.assignment_path)}
        if e.membership_group is not None:
            links["membership"] = self.url(call, f"/groups/{e.membership_group}/users/{e.actor_id}")
        if e.prior_role is not None:
            links["prior_role"] = self.url(call, f"/roles/{e.prior_role}")
        out["links"] = links
        return out


ROLE_ASSIGNMENT = RoleAssignment()
