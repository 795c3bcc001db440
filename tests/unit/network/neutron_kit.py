"""Helpers shared by the network tests: callers of chosen projects and roles, the
requests every test makes, and Neutron's fault shape checked in one place.

Tokens are signed with the site's own key (``forge_token``), so policy is tested
without creating users through the identity API. ``alpha``, ``beta`` are projects.
"""

from __future__ import annotations

from typing import Any

import httpx

from edgefed.core.ids import predictable_id
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.tokens import forge_token

N = "/network/v2.0"
Headers = dict[str, str]


def as_(site: InProcessSite, role: str = "member", project: str = "alpha") -> Headers:
    """A caller with ``role`` (admin implies member implies reader) on ``project``."""
    ctx = site.app.state.ctx
    return {"X-Auth-Token": forge_token(ctx, user=f"{role}-{project}", project=project, role=role)}


def admin(site: InProcessSite) -> Headers:
    return as_(site, "admin", "admin")


def project_id(name: str) -> str:
    """The id ``forge_token`` gives the project ``name``."""
    return predictable_id("project", name)


async def post(site: InProcessSite, h: Headers, path: str, key: str, **body: Any) -> httpx.Response:
    return await site.client.post(f"{N}/{path}", json={key: body}, headers=h)


async def put(site: InProcessSite, h: Headers, path: str, key: str, **body: Any) -> httpx.Response:
    return await site.client.put(f"{N}/{path}", json={key: body}, headers=h)


async def get(site: InProcessSite, h: Headers, path: str) -> httpx.Response:
    return await site.client.get(f"{N}/{path}", headers=h)


async def delete(site: InProcessSite, h: Headers, path: str) -> httpx.Response:
    return await site.client.delete(f"{N}/{path}", headers=h)


async def made(site: InProcessSite, h: Headers, path: str, key: str, **body: Any) -> dict[str, Any]:
    """Create through ``POST path``; the new resource (201 asserted)."""
    r = await post(site, h, path, key, **body)
    assert r.status_code == 201, r.text
    return r.json()[key]  # type: ignore[no-any-return]


async def network(site: InProcessSite, h: Headers, name: str = "n", **body: Any) -> dict[str, Any]:
    return await made(site, h, "networks", "network", name=name, **body)


async def subnet(
    site: InProcessSite, h: Headers, network_id: str, cidr: str = "10.1.0.0/24", **body: Any
) -> dict[str, Any]:
    return await made(site, h, "subnets", "subnet", network_id=network_id, cidr=cidr, **body)


async def port(site: InProcessSite, h: Headers, network_id: str, **body: Any) -> dict[str, Any]:
    return await made(site, h, "ports", "port", network_id=network_id, **body)


async def listed(site: InProcessSite, h: Headers, path: str, key: str) -> list[dict[str, Any]]:
    """``GET path`` (query included); the collection under ``key`` (200 asserted)."""
    r = await get(site, h, path)
    assert r.status_code == 200, r.text
    return r.json()[key]  # type: ignore[no-any-return]


def names(items: list[dict[str, Any]]) -> list[str]:
    return sorted(item["name"] for item in items)


async def group(site: InProcessSite, h: Headers, name: str = "web") -> dict[str, Any]:
    return await made(site, h, "security-groups", "security_group", name=name)


async def default_group(site: InProcessSite, h: Headers) -> dict[str, Any]:
    (found,) = await listed(site, h, "security-groups?name=default", "security_groups")
    return found


async def rule(site: InProcessSite, h: Headers, group_id: str, **body: Any) -> httpx.Response:
    return await post(
        site, h, "security-group-rules", "security_group_rule", security_group_id=group_id, **body
    )


Case = tuple[dict[str, Any], int, str, str]


async def refused_updates(
    site: InProcessSite, h: Headers, path: str, key: str, cases: list[Case]
) -> None:
    """``PUT path`` with each body of ``cases`` (body, status, type, message): each is
    refused as its case says, and the resource is after them all as it was before."""
    before = (await get(site, h, path)).json()[key]
    for body, status, kind, message in cases:
        fault(await put(site, h, path, key, **body), status, kind, message)
    assert (await get(site, h, path)).json()[key] == before


def fixed_attributes(
    read_only: dict[str, Any], unsupported: dict[str, Any] | None = None
) -> list[Case]:
    """The refused cases of updates naming what cannot change: Neutron's read-only
    attributes, and those this cloud does not change (``fixed_on_update``)."""
    cases: list[Case] = [
        (
            {"name": "x", name: value},
            400,
            "HTTPBadRequest",
            f"Cannot update read-only attribute {name}",
        )
        for name, value in read_only.items()
    ]
    cases += [
        ({"name": "x", name: value}, 400, "InvalidInput", f"updating '{name}' is not supported")
        for name, value in (unsupported or {}).items()
    ]
    return cases


def fault(r: httpx.Response, status: int, kind: str, message: str = "") -> None:
    """``r`` is Neutron's fault: ``status``, the type ``kind``, ``message`` in its message."""
    assert r.status_code == status, r.text
    error = r.json()["NeutronError"]
    assert error["type"] == kind, error
    assert message in error["message"], error


def policy_refused(r: httpx.Response, rule: str) -> None:
    """403 ``PolicyNotAuthorized`` naming ``rule`` (``create_network:shared``)."""
    fault(r, 403, "PolicyNotAuthorized", f"rule:{rule} is disallowed by policy")
