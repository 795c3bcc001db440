"""A hostile tenant: a member of project alpha attacks project beta's images, ports and
networks; a reader writes; oversized and deeply nested bodies go through the scope
router; a password is guessed. Every attack is a 4xx that gives nothing away, never a
5xx, and the fleet keeps serving.

Two in-process sites, Berlin and Denver, wired through ASGI; tokens are signed by the
site that is asked (roles of foreign tokens are decided locally, which is not what is
tested here).
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefed.core.ids import predictable_id
from edgefed.store.image import ImageRepository
from edgefed.store.network import NetworkRepository
from edgefed.testkit.asgi_fleet import FleetTransport
from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings
from edgefed.testkit.inprocess_fleet import admin, ctx_of, fleet
from edgefed.testkit.tokens import forge_token

V = {"OpenStack-API-Version": "compute 2.96"}


class CountingTransport(FleetTransport):
    """The fleet's fake network, counting the requests each site receives from others."""

    def __init__(self) -> None:
        super().__init__()
        self.received: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.received[request.url.host] += 1
        return await super().handle_async_request(request)


def project(name: str) -> str:
    return predictable_id("project", name)


def as_(site: InProcessSite, project_name: str, role: str = "member") -> dict[str, str]:
    token = forge_token(
        ctx_of(site), user=f"{role}-{project_name}", project=project_name, role=role
    )
    return {"X-Auth-Token": token, **V}


async def image(site: InProcessSite, *, owner: str, visibility: str, **extra: Any) -> str:
    record = await ImageRepository(ctx_of(site).store).create(
        owner=owner,
        name="secret-os",
        disk_format="qcow2",
        container_format="bare",
        visibility=visibility,
        data=b"beta's disk" * 100,
        data_dir=site.settings.data_dir,
        **extra,
    )
    return record.id


async def boot(
    site: InProcessSite, headers: dict[str, str], image_id: str, **extra: Any
) -> httpx.Response:
    server = {"name": "vm", "imageRef": image_id, "flavorRef": "1", "networks": "auto", **extra}
    return await site.client.post("/compute/v2.1/servers", json={"server": server}, headers=headers)


def refused_as_missing(r: httpx.Response, what: str) -> None:
    assert r.status_code == 400, r.text
    assert r.json()["badRequest"]["message"] == f"{what} could not be found."


@contextlib.asynccontextmanager
async def two_sites(
    tmp_path: Path,
) -> AsyncIterator[tuple[InProcessSite, InProcessSite, CountingTransport]]:
    transport = CountingTransport()
    async with fleet(tmp_path, ["Berlin", "Denver"], joined=True, transport=transport) as sites:
        yield sites["Berlin"], sites["Denver"], transport


async def test_alpha_cannot_boot_betas_images_here_or_through_the_scope(tmp_path: Path) -> None:
    async with two_sites(tmp_path) as (berlin, denver, _):
        alpha = as_(berlin, "alpha")
        private = await image(berlin, owner=project("beta"), visibility="private")
        shared = await image(berlin, owner=project("beta"), visibility="shared")
        refused_as_missing(await boot(berlin, alpha, private), f"Image {private}")
        refused_as_missing(await boot(berlin, alpha, shared), f"Image {shared}")
        # Beta's private image at Denver, asked for through the scope with alpha's token:
        # Denver applies its rules to the caller, and Berlin keeps no copy.
        remote = await image(denver, owner=project("beta"), visibility="private")
        r = await boot(berlin, {**alpha, "X-Scope": "{image: Denver}"}, remote)
        assert r.status_code == 400 and "could not be found" in r.text, r.text
        assert await ImageRepository(ctx_of(berlin).store).get(remote) is None
        # A copy of Denver's shared image kept at Berlin (a scoped boot of a member cached
        # it): the member list lives at Denver, which does not show it to alpha.
        cached = await image(denver, owner=project("beta"), visibility="shared")
        await image(
            berlin, owner=project("beta"), visibility="shared", image_id=cached, origin="Denver"
        )
        refused_as_missing(await boot(berlin, alpha, cached), f"Image {cached}")
        # Beta boots its own images.
        beta = as_(berlin, "beta")
        for image_id in (private, shared):
            assert (await boot(berlin, beta, image_id)).status_code == 202


async def test_alpha_cannot_take_betas_port_or_network(tmp_path: Path) -> None:
    async with two_sites(tmp_path) as (berlin, _, _):
        alpha = as_(berlin, "alpha")
        public = await image(berlin, owner=project("beta"), visibility="public")
        repo = NetworkRepository(ctx_of(berlin).store)
        net = await repo.ensure_default_network(project("beta"))
        port = await repo.create_port(network=net, project_id=project("beta"))
        refused_as_missing(
            await boot(berlin, alpha, public, networks=[{"port": port.id}]), f"Port id {port.id}"
        )
        refused_as_missing(
            await boot(berlin, alpha, public, networks=[{"uuid": net.id}]), f"Network {net.id}"
        )
        after = await repo.get_port(port.id)
        assert after is not None and not after.device_id
        # Nor through the network API.
        n = "/network/v2.0"
        r = await berlin.client.put(
            f"{n}/ports/{port.id}", json={"port": {"device_id": "mine"}}, headers=alpha
        )
        assert r.status_code == 404
        r = await berlin.client.post(
            f"{n}/ports", json={"port": {"network_id": net.id}}, headers=alpha
        )
        assert r.status_code == 404


async def test_a_reader_writes_nothing_and_a_member_shares_nothing(tmp_path: Path) -> None:
    async with two_sites(tmp_path) as (berlin, _, _):
        n = "/network/v2.0"
        reader, member = as_(berlin, "alpha", "reader"), as_(berlin, "alpha")
        r = await berlin.client.post(
            f"{n}/networks", json={"network": {"name": "x"}}, headers=reader
        )
        assert r.status_code == 403 and "rule:create_network" in r.text
        r = await berlin.client.post(
            f"{n}/networks", json={"network": {"name": "x"}}, headers=member
        )
        net = r.json()["network"]
        r = await berlin.client.delete(f"{n}/networks/{net['id']}", headers=reader)
        assert r.status_code == 403
        r = await berlin.client.put(
            f"{n}/networks/{net['id']}", json={"network": {"shared": True}}, headers=member
        )
        assert r.status_code == 403 and "rule:update_network:shared" in r.text


@pytest.mark.parametrize("scope", ["{compute: Denver}", "{compute: Berlin & Denver}"])
async def test_oversized_and_deep_bodies_are_refused_before_the_router_sends_them(
    tmp_path: Path, scope: str
) -> None:
    async with two_sites(tmp_path) as (berlin, _, transport):
        # An admin's token (a tenant's would be refused at Denver before its body is read:
        # the router checks the caller first), so that the router would send the body on.
        h = {**admin(berlin), **V, "X-Scope": scope, "Content-Type": "application/json"}
        limit = berlin.settings.max_request_body_bytes
        pulled = 0

        async def oversized():
            nonlocal pulled
            for _ in range(16):
                pulled += limit // 4
                yield b" " * (limit // 4)

        before = transport.received["denver.test"]
        r = await berlin.client.post("/compute/v2.1/servers", content=oversized(), headers=h)
        assert r.status_code == 413, r.text
        assert pulled <= limit + limit // 4  # not buffered to the end
        r = await berlin.client.post(
            "/compute/v2.1/servers", content=b'{"server": ' + b"[" * 10_000, headers=h
        )
        assert r.status_code == 400 and "nested deeper than" in r.text, r.text
        # Denver never saw either body.
        assert transport.received["denver.test"] == before
        # And both sites keep serving.
        r = await berlin.client.get("/compute/v2.1/flavors", headers=h)
        assert r.status_code == 200, r.text


async def test_password_guessing_locks_the_account_and_burns_no_unbounded_cpu(
    tmp_path: Path,
) -> None:
    settings = site_settings(tmp_path / "s", lockout_failure_attempts=5, lockout_duration=600.0)
    async with run_site(settings) as site:
        admin = {"X-Auth-Token": await site.token()}
        r = await site.client.post(
            "/identity/v3/users",
            json={"user": {"name": "beta-op", "password": "s3cret"}},
            headers=admin,
        )
        user_id = r.json()["user"]["id"]

        def guess(password: str) -> dict[str, Any]:
            user = {"name": "beta-op", "domain": {"id": "default"}, "password": password}
            return {"auth": {"identity": {"methods": ["password"], "password": {"user": user}}}}

        statuses = [
            (
                await site.client.post("/identity/v3/auth/tokens", json=guess(f"guess-{i}"))
            ).status_code
            for i in range(20)
        ]
        assert statuses == [401] * 20
        r = await site.client.post("/identity/v3/auth/tokens", json=guess("s3cret"))
        assert r.status_code == 401
        assert r.json()["error"]["message"] == f"The account is locked for user: {user_id}."
