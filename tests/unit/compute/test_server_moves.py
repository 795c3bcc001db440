"""Moves within a site on the fake driver: resize (VERIFY_RESIZE, confirm, revert),
cold migration to another host (admin), shelve and unshelve. The disk goes along as a
snapshot image; a refused move is Nova's 4xx and changes nothing."""

from __future__ import annotations

from typing import Any

from compute_testkit import V, boot, make_image, server_record, wait_for

from edgefed.store.image import ImageRepository
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.tokens import forge_token

C = "/compute/v2.1"


def headers(site: InProcessSite) -> dict[str, str]:
    return {"X-Auth-Token": forge_token(site.app.state.ctx), **V}


async def action(site: InProcessSite, server_id: str, body: dict[str, Any]) -> Any:
    return await site.client.post(f"{C}/servers/{server_id}/action", json=body,
                                  headers=headers(site))  # fmt: skip


async def host_of(site: InProcessSite, server_id: str) -> str | None:
    return (await server_record(site, server_id)).host


async def test_resize_confirm_and_revert(two_hosts: InProcessSite) -> None:
    site, h = two_hosts, headers(two_hosts)
    image = await make_image(site)
    server_id = (await boot(site, h, image, networks="none"))["id"]
    await wait_for(site, h, server_id, "ACTIVE")

    r = await action(site, server_id, {"resize": {"flavorRef": "1"}})
    assert r.status_code == 400 and "must change flavor" in r.text
    r = await action(site, server_id, {"resize": {"flavorRef": "nope"}})
    assert r.status_code == 400 and "Flavor nope could not be found" in r.text

    r = await action(site, server_id, {"resize": {"flavorRef": "2"}})
    assert r.status_code == 202, r.text
    shown = await wait_for(site, h, server_id, "VERIFY_RESIZE")
    assert shown["flavor"]["original_name"] == "m1.small"
    r = await action(site, server_id, {"revertResize": None})
    assert r.status_code == 202, r.text
    shown = await wait_for(site, h, server_id, "ACTIVE")
    assert shown["flavor"]["original_name"] == "m1.tiny"

    r = await action(site, server_id, {"resize": {"flavorRef": "2"}})
    assert r.status_code == 202, r.text
    await wait_for(site, h, server_id, "VERIFY_RESIZE")
    r = await action(site, server_id, {"confirmResize": None})
    assert r.status_code == 202, r.text
    shown = await wait_for(site, h, server_id, "ACTIVE")
    assert shown["flavor"]["original_name"] == "m1.small"
    r = await action(site, server_id, {"resize": {"flavorRef": "1"}})
    assert r.status_code == 400 and "Unable to resize disk down" in r.text
    r = await action(site, server_id, {"confirmResize": None})
    assert r.status_code == 409 and "vm_state active" in r.text


async def test_migrate_moves_the_server_to_the_other_host(two_hosts: InProcessSite) -> None:
    site, h = two_hosts, headers(two_hosts)
    image = await make_image(site)
    server_id = (await boot(site, h, image, networks="none"))["id"]
    await wait_for(site, h, server_id, "ACTIVE")
    before = await host_of(site, server_id)

    r = await action(site, server_id, {"migrate": None})
    assert r.status_code == 202, r.text
    await wait_for(site, h, server_id, "VERIFY_RESIZE")
    after = await host_of(site, server_id)
    assert {before, after} == {"edge-1", "edge-2"}
    r = await action(site, server_id, {"confirmResize": None})
    assert r.status_code == 202
    await wait_for(site, h, server_id, "ACTIVE")
    assert await host_of(site, server_id) == after


async def test_migrate_on_a_single_host_site_says_there_is_no_other(
    site: InProcessSite, h: dict[str, str], image_id: str
) -> None:
    server_id = (await boot(site, h, image_id, networks="none"))["id"]
    await wait_for(site, h, server_id, "ACTIVE")
    r = await site.client.post(f"{C}/servers/{server_id}/action", json={"migrate": None},
                               headers=h)  # fmt: skip
    assert r.status_code == 202, r.text
    shown = await wait_for(site, h, server_id, "ERROR")
    assert "No valid host" in shown["fault"]["message"]


async def test_shelve_and_unshelve(two_hosts: InProcessSite) -> None:
    site, h = two_hosts, headers(two_hosts)
    image = await make_image(site)
    server_id = (await boot(site, h, image, networks="none", name="till"))["id"]
    await wait_for(site, h, server_id, "ACTIVE")

    r = await action(site, server_id, {"shelve": None})
    assert r.status_code == 202, r.text
    await wait_for(site, h, server_id, "SHELVED_OFFLOADED")
    assert await host_of(site, server_id) is None
    images = ImageRepository(site.app.state.ctx.store)
    shelved = await images.data.images.list(filters={"name": "till-shelved"})
    assert [i.status for i in shelved] == ["active"]
    r = await action(site, server_id, {"shelve": None})
    assert r.status_code == 409

    r = await action(site, server_id, {"unshelve": None})
    assert r.status_code == 202, r.text
    await wait_for(site, h, server_id, "ACTIVE")
    assert await host_of(site, server_id) in ("edge-1", "edge-2")
    assert not await images.data.images.list(filters={"name": "till-shelved"})
