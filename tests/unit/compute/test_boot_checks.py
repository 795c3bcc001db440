"""A boot this site cannot honour is refused before the answer, and nothing is recorded:
an image not active or too big for the flavor, an unknown zone, a port in use, a boot
over quota."""

from __future__ import annotations

from typing import Any

from compute_testkit import make_image, wait_for

from edgefed.store.image import ImageRepository
from edgefed.store.network import NetworkRepository
from edgefed.testkit.inprocess import InProcessSite

C = "/compute/v2.1"


async def boot(site: InProcessSite, h: dict[str, str], image: str, **extra: Any) -> Any:
    server = {"name": "vm", "imageRef": image, "flavorRef": "1", "networks": "auto", **extra}
    return await site.client.post(f"{C}/servers", json={"server": server}, headers=h)


async def servers(site: InProcessSite, h: dict[str, str]) -> list[str]:
    r = await site.client.get(f"{C}/servers", headers=h)
    return [s["id"] for s in r.json()["servers"]]


async def project_of(site: InProcessSite, h: dict[str, str]) -> str:
    """The project of the token in ``h``."""
    subject = {**h, "X-Subject-Token": h["X-Auth-Token"]}
    r = await site.client.get("/identity/v3/auth/tokens", headers=subject)
    return str(r.json()["token"]["project"]["id"])


def refusal(r: Any) -> tuple[int, str]:
    doc = r.json()
    (kind,) = doc
    return r.status_code, doc[kind]["message"]


async def test_an_image_must_be_active_and_fit_the_flavor(
    site: InProcessSite, h: dict[str, str]
) -> None:
    queued = await ImageRepository(site.app.state.ctx.store).create(
        owner=None, name="empty", visibility="public"
    )
    hungry = await make_image(site, min_ram=1024)  # m1.tiny (flavor 1) has 512 MiB
    roomy = await make_image(site, min_disk=5)  # and a 1 GiB disk

    assert refusal(await boot(site, h, queued.id)) == (400, f"Image {queued.id} is not active.")
    assert refusal(await boot(site, h, hungry)) == (
        400, "Flavor's memory is too small for requested image.",
    )  # fmt: skip
    assert refusal(await boot(site, h, roomy)) == (
        400, "Flavor's disk is too small for requested image.",
    )  # fmt: skip
    assert (await boot(site, h, hungry, flavorRef="2")).status_code == 202  # m1.small: 2 GiB


async def test_a_zone_must_be_one_this_site_has(site: InProcessSite, h: dict[str, str]) -> None:
    image = await make_image(site)
    zone = site.settings.availability_zone
    assert refusal(await boot(site, h, image, availability_zone="atlantis")) == (
        400, "The requested availability zone is not available",
    )  # fmt: skip
    r = await boot(site, h, image, availability_zone=f"{zone}:some-host")
    assert r.status_code == 202, r.text
    shown = await site.client.get(f"{C}/servers/{r.json()['server']['id']}", headers=h)
    assert shown.json()["server"]["OS-EXT-AZ:availability_zone"] == zone


async def test_a_port_in_use_is_a_conflict(site: InProcessSite, h: dict[str, str]) -> None:
    image = await make_image(site)
    repo = NetworkRepository(site.app.state.ctx.store)
    project_id = await project_of(site, h)
    net = await repo.ensure_default_network(project_id)
    port = await repo.create_port(network=net, project_id=project_id)
    first = await boot(site, h, image, networks=[{"port": port.id}])
    assert first.status_code == 202, first.text
    await wait_for(site, h, first.json()["server"]["id"], "ACTIVE")  # the port is attached
    before = await servers(site, h)
    again = await boot(site, h, image, networks=[{"port": port.id}])
    assert refusal(again) == (409, f"Port {port.id} is still in use.")
    assert await servers(site, h) == before  # nothing recorded


async def test_a_boot_over_quota_records_nothing(site: InProcessSite, h: dict[str, str]) -> None:
    image = await make_image(site)
    project_id = await project_of(site, h)
    r = await site.client.put(
        f"{C}/os-quota-sets/{project_id}", json={"quota_set": {"instances": 2}}, headers=h
    )
    assert r.status_code == 200, r.text
    status, message = refusal(await boot(site, h, image, min_count=3, max_count=3))
    assert status == 403 and "instances" in message
    assert await servers(site, h) == []
    assert (await boot(site, h, image, min_count=2, max_count=2)).status_code == 202
    assert len(await servers(site, h)) == 2
