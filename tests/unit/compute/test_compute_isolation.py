"""Tenant isolation at boot: only images the caller may see, only its own ports and
networks (others' are answered as if they did not exist, as Nova does)."""

from __future__ import annotations

from compute_testkit import V, make_image

from edgefed.core.ids import predictable_id
from edgefed.store.image import ImageRepository
from edgefed.store.network import NetworkRepository
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.tokens import forge_token


def member_of(site: InProcessSite, project: str) -> dict[str, str]:
    token = forge_token(site.app.state.ctx, user=f"u-{project}", project=project, role="member")
    return {"X-Auth-Token": token, **V}


def project(name: str) -> str:
    return predictable_id("project", name)


async def boot(site: InProcessSite, headers: dict[str, str], image: str, **extra):
    server = {"name": "vm", "imageRef": image, "flavorRef": "1", "networks": "auto", **extra}
    return await site.client.post("/compute/v2.1/servers", json={"server": server}, headers=headers)


async def test_a_private_or_unshared_image_of_another_project_does_not_boot(
    site: InProcessSite,
) -> None:
    alpha, beta = member_of(site, "alpha"), member_of(site, "beta")
    private = await make_image(site, owner=project("beta"), visibility="private")
    shared = await make_image(site, owner=project("beta"), visibility="shared")
    for image in (private, shared):
        r = await boot(site, alpha, image)
        assert r.status_code == 400, r.text
        assert r.json()["badRequest"]["message"] == f"Image {image} could not be found."
        assert (await boot(site, beta, image)).status_code == 202
    # Shared with alpha: now it may.
    await ImageRepository(site.app.state.ctx.store).add_member(shared, project("alpha"))
    r = await boot(site, alpha, shared)
    assert r.status_code == 202, r.text
    # Public and community images boot for anyone.
    for visibility in ("public", "community"):
        image = await make_image(site, owner=project("beta"), visibility=visibility)
        assert (await boot(site, alpha, image)).status_code == 202


async def test_only_ports_and_networks_of_the_callers_project_attach(site: InProcessSite) -> None:
    alpha, beta = member_of(site, "alpha"), member_of(site, "beta")
    image = await make_image(site)
    repo = NetworkRepository(site.app.state.ctx.store)
    net = await repo.ensure_default_network(project("beta"))
    port = await repo.create_port(network=net, project_id=project("beta"))

    r = await boot(site, alpha, image, networks=[{"port": port.id}])
    assert r.status_code == 400, r.text
    assert r.json()["badRequest"]["message"] == f"Port id {port.id} could not be found."
    r = await boot(site, alpha, image, networks=[{"uuid": net.id}])
    assert r.status_code == 400, r.text
    assert r.json()["badRequest"]["message"] == f"Network {net.id} could not be found."
    # The port was not taken.
    assert (await repo.get_port(port.id)).device_id == ""  # type: ignore[union-attr]
    # Its owner may use both.
    assert (await boot(site, beta, image, networks=[{"port": port.id}])).status_code == 202
    assert (await boot(site, beta, image, networks=[{"uuid": net.id}])).status_code == 202
    # An admin sees the port, but a server of another project cannot use it.
    other = await repo.create_port(network=net, project_id=project("beta"))
    admin = {"X-Auth-Token": await site.token(), **V}
    r = await boot(site, admin, image, networks=[{"port": other.id}])
    assert r.status_code == 400 and "not usable" in r.text, r.text
