"""GET /v3/role_assignments: filters, ``effective`` expansion and ``include_names``.

Filters: ``user.id``, ``group.id``, ``role.id``, ``scope.project.id``, ``scope.domain.id``,
``scope.system``. ``effective`` replaces group assignments by one entry per member
(with a ``membership`` link) and adds the implied roles (with a ``prior_role`` link), as
Keystone does; ``include_names`` adds names and domains to every reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, Request

from edgefed.api.auth import Principal, current_principal
from edgefed.api.responses import Json
from edgefed.services.identity.common import present_flag
from edgefed.services.identity.grants import role_graph
from edgefed.services.identity.guard import authorize
from edgefed.services.identity.state import IdentityState, identity_state
from edgefed.services.identity.views import api_url
from edgefed.store.identity import Row, domains, groups, projects, roles, users

router = APIRouter()


@dataclass(frozen=True, slots=True)
class Entry:
    """One (possibly derived) assignment before rendering."""

    actor_type: str
    actor_id: str
    target_type: str
    target_id: str
    role_id: str
    assignment_path: str
    membership_group: str | None = None
    prior_role: str | None = None


def _path(a: Row, role_id: str) -> str:
    if a["target_type"] == "system":
        return f"/system/{a['actor_type']}s/{a['actor_id']}/roles/{role_id}"
    return (
        f"/{a['target_type']}s/{a['target_id']}/{a['actor_type']}s/{a['actor_id']}/roles/{role_id}"
    )


@dataclass
class Names:
    """Lookups for ``include_names``, loaded once per request."""

    users: dict[str, Row] = field(default_factory=dict)
    groups: dict[str, Row] = field(default_factory=dict)
    projects: dict[str, Row] = field(default_factory=dict)
    domains: dict[str, Row] = field(default_factory=dict)
    roles: dict[str, Row] = field(default_factory=dict)


async def _load_names(state: IdentityState, entries: list[Entry]) -> Names:
    repo = state.repo
    names = Names()
    wanted_users = {e.actor_id for e in entries if e.actor_type == "user"}
    wanted_groups = {e.actor_id for e in entries if e.actor_type == "group"}
    names.users = {r["id"]: r for r in await repo.list_rows(users, filters={"id": wanted_users})}
    names.groups = {r["id"]: r for r in await repo.list_rows(groups, filters={"id": wanted_groups})}
    names.projects = {
        r["id"]: r
        for r in await repo.list_rows(
            projects, filters={"id": {e.target_id for e in entries if e.target_type == "project"}}
        )
    }
    names.domains = {r["id"]: r for r in await repo.list_rows(domains)}
    names.roles = {r["id"]: r for r in await repo.list_rows(roles)}
    return names


def _ref(row: Row | None, ref_id: str, names: Names | None, *, with_domain: bool) -> dict[str, Any]:
    if names is None or row is None:
        return {"id": ref_id}
    ref: dict[str, Any] = {"id": ref_id, "name": row["name"]}
    if with_domain:
        domain = names.domains.get(row["domain_id"])
        ref["domain"] = {"id": row["domain_id"], "name": domain["name"] if domain else ""}
    return ref


def _render(state: IdentityState, e: Entry, names: Names | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    role_row = names.roles.get(e.role_id) if names else None
    out["role"] = _ref(role_row, e.role_id, names, with_domain=False)
    if e.actor_type == "user":
        out["user"] = _ref(names.users.get(e.actor_id) if names else None, e.actor_id, names,
                           with_domain=True)  # fmt: skip
    else:
        out["group"] = _ref(names.groups.get(e.actor_id) if names else None, e.actor_id, names,
                            with_domain=True)  # fmt: skip
    if e.target_type == "project":
        row = names.projects.get(e.target_id) if names else None
        out["scope"] = {"project": _ref(row, e.target_id, names, with_domain=True)}
    elif e.target_type == "domain":
        row = names.domains.get(e.target_id) if names else None
        out["scope"] = {"domain": _ref(row, e.target_id, names, with_domain=False)}
    else:
        out["scope"] = {"system": {"all": True}}
    links: dict[str, str] = {"assignment": api_url(state, e.assignment_path)}
    if e.membership_group is not None:
        links["membership"] = api_url(state, f"/groups/{e.membership_group}/users/{e.actor_id}")
    if e.prior_role is not None:
        links["prior_role"] = api_url(state, f"/roles/{e.prior_role}")
    out["links"] = links
    return out


async def list_role_assignments(
    request: Request,
    principal: Principal = Depends(current_principal),
    state: IdentityState = Depends(identity_state),
) -> Json:
    q = request.query_params
    user_id = q.get("user.id")
    group_id = q.get("group.id")
    role_id = q.get("role.id")
    effective = present_flag(q.get("effective"))
    include_names = present_flag(q.get("include_names"))
    authorize(principal, "list_role_assignments", self_user_id=user_id)

    target_type: str | None = None
    target_id: str | None = None
    if q.get("scope.project.id"):
        target_type, target_id = "project", q["scope.project.id"]
    elif q.get("scope.domain.id"):
        target_type, target_id = "domain", q["scope.domain.id"]
    elif q.get("scope.system"):
        target_type, target_id = "system", "all"

    actors: list[tuple[str, str]] | None = None
    if user_id:
        actors = [("user", user_id)]
        if effective:
            actors += [("group", g["id"]) for g in await state.repo.groups_of(user_id)]
    elif group_id:
        if effective:  # Keystone: effective assignments never name a group
            return Json(_envelope(state, []))
        actors = [("group", group_id)]
    rows = await state.repo.list_assignments(
        actors=actors, target_type=target_type, target_id=target_id
    )

    entries: list[Entry] = []
    for a in rows:
        base = Entry(
            actor_type=a["actor_type"],
            actor_id=a["actor_id"],
            target_type=a["target_type"],
            target_id=a["target_id"],
            role_id=a["role_id"],
            assignment_path=_path(a, a["role_id"]),
        )
        if effective and a["actor_type"] == "group":
            members = await state.repo.members_of(a["actor_id"])
            entries += [
                Entry(
                    actor_type="user",
                    actor_id=m["id"],
                    target_type=base.target_type,
                    target_id=base.target_id,
                    role_id=base.role_id,
                    assignment_path=base.assignment_path,
                    membership_group=a["actor_id"],
                )
                for m in members
                if user_id is None or m["id"] == user_id
            ]
        else:
            entries.append(base)
    if effective:
        graph = await role_graph(state)
        expanded: list[Entry] = []
        seen: set[tuple[str, str, str, str, str]] = set()
        for e in entries:
            for rid in [e.role_id, *sorted(graph.expand({e.role_id}) - {e.role_id})]:
                key = (e.actor_type, e.actor_id, e.target_type, e.target_id, rid)
                if key in seen:
                    continue
                seen.add(key)
                expanded.append(
                    Entry(
                        actor_type=e.actor_type,
                        actor_id=e.actor_id,
                        target_type=e.target_type,
                        target_id=e.target_id,
                        role_id=rid,
                        assignment_path=e.assignment_path,
                        membership_group=e.membership_group,
                        prior_role=None if rid == e.role_id else e.role_id,
                    )
                )
        entries = expanded
    if role_id:
        entries = [e for e in entries if e.role_id == role_id]
    names = await _load_names(state, entries) if include_names else None
    return Json(_envelope(state, [_render(state, e, names) for e in entries]))


def _envelope(state: IdentityState, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "role_assignments": items,
        "links": {"self": api_url(state, "/role_assignments"), "previous": None, "next": None},
    }


router.add_api_route("/v3/role_assignments", list_role_assignments, methods=["GET"])
