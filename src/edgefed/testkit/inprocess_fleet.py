"""In-process fleets: sites wired through ASGI transports, joined into one fleet."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx

from edgefed.api.context import SiteContext
from edgefed.core.settings import fleet_admin_mappings
from edgefed.services.sites.gossip import gossip_round
from edgefed.services.sites.registry import Registry
from edgefed.testkit.asgi_fleet import FleetTransport
from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings
from edgefed.testkit.tokens import forge_token


def ctx_of(site: InProcessSite) -> SiteContext:
    ctx: SiteContext = site.app.state.ctx
    return ctx


def registry(site: InProcessSite) -> Registry:
    return ctx_of(site).slots.require(Registry)


def admin(site: InProcessSite) -> dict[str, str]:
    return {"X-Auth-Token": forge_token(ctx_of(site))}


async def enroll(issuer: InProcessSite, joiner: InProcessSite, *, authority: bool = False) -> None:
    """``joiner`` joins the fleet of ``issuer`` (a fleet authority), with a token made for it."""
    name = ctx_of(joiner).name
    r = await issuer.client.post(
        "/edge/v1/fleet/enrollments",
        json={"enrollment": {"name": name, "authority": authority}},
        headers=admin(issuer),
    )
    assert r.status_code == 201, r.text
    token = r.json()["enrollment"]["token"]
    r = await joiner.client.post("/edge/v1/site/join", json={"token": token}, headers=admin(joiner))
    assert r.status_code == 200, r.text


@contextlib.asynccontextmanager
async def fleet(
    tmp_path: Path,
    names: list[str],
    *,
    joined: bool = False,
    transport: FleetTransport | None = None,
    database_url: Callable[[str], str | None] | None = None,
    trust_admins: bool = True,
) -> AsyncIterator[dict[str, InProcessSite]]:
    """In-process sites behind one fake network; ``database_url(name)`` gives a site its
    own database (PostgreSQL runs), else each keeps SQLite in its data directory. With
    ``trust_admins`` (as ``edgefed up``) every site's admin is an admin at every site."""
    transport = transport or FleetTransport()
    sites: dict[str, InProcessSite] = {}
    async with contextlib.AsyncExitStack() as stack:
        for name in names:
            settings = site_settings(
                tmp_path / name.lower(),
                name=name,
                gossip_interval_seconds=3600.0,
                database_url=database_url(name) if database_url is not None else None,
                mapping=fleet_admin_mappings() if trust_admins else (),
            )
            site = await stack.enter_async_context(run_site(settings, transport=transport))
            transport.add(f"{name.lower()}.test", httpx.ASGITransport(app=site.app))
            sites[name] = site
        if joined:
            first = sites[names[0]]
            for name in names[1:]:
                await enroll(first, sites[name])
            await gossip_round(registry(first))
        yield sites
