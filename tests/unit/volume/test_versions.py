"""Version discovery and microversion negotiation, as Cinder answers them."""

from __future__ import annotations

from tests.unit.volume.cinder_kit import admin, fault

from edgefed.testkit.inprocess import InProcessSite


async def test_the_root_lists_v3_with_300_and_v3_lists_itself(site: InProcessSite) -> None:
    r = await site.client.get("/volume/")
    assert r.status_code == 300
    (v3,) = r.json()["versions"]
    assert (v3["id"], v3["status"], v3["min_version"], v3["version"]) == (
        "v3.0",
        "CURRENT",
        "3.0",
        "3.71",
    )
    assert v3["links"][-1]["href"].endswith("/volume/v3/")
    r = await site.client.get("/volume/v3/")
    assert r.status_code == 200 and r.json()["versions"][0]["id"] == "v3.0"


async def test_the_version_asked_is_echoed_and_none_means_3_0(site: InProcessSite) -> None:
    h = admin(site, "3.27")
    r = await site.client.get("/volume/v3/volumes", headers=h)
    assert r.status_code == 200
    assert r.headers["OpenStack-API-Version"] == "volume 3.27"
    assert r.headers["Vary"] == "OpenStack-API-Version"
    del h["OpenStack-API-Version"]
    r = await site.client.get("/volume/v3/volumes", headers=h)
    assert r.headers["OpenStack-API-Version"] == "volume 3.0"
    h["OpenStack-API-Version"] = "volume latest"
    r = await site.client.get("/volume/v3/volumes", headers=h)
    assert r.headers["OpenStack-API-Version"] == "volume 3.71"


async def test_bad_versions_are_400_and_out_of_range_406(site: InProcessSite) -> None:
    for asked, status, words in (
        ("volume 3.x", 400, "API Version String 3.x is of invalid format"),
        ("volume 3.01", 400, "is of invalid format"),
        ("compute 2.1", 400, "API version None is not supported on this method."),
        (
            "volume 3.72",
            406,
            "Version 3.72 is not supported by the API. Minimum is 3.0 and maximum is 3.71.",
        ),
        ("volume 2.0", 406, "Minimum is 3.0"),
    ):
        h = {**admin(site), "OpenStack-API-Version": asked}
        fault(await site.client.get("/volume/v3/volumes", headers=h), status, words)


async def test_a_route_of_a_later_version_is_404_below_it(site: InProcessSite) -> None:
    fault(await site.client.get("/volume/v3/attachments", headers=admin(site, "3.26")), 404)
    r = await site.client.get("/volume/v3/attachments", headers=admin(site, "3.27"))
    assert r.status_code == 200 and r.json() == {"attachments": []}
    # A fault says the version it was made for too.
    r = await site.client.get("/volume/v3/volumes/nope", headers=admin(site, "3.50"))
    assert r.status_code == 404 and r.headers["OpenStack-API-Version"] == "volume 3.50"


async def test_the_catalog_names_block_storage_and_volumev3(site: InProcessSite) -> None:
    r = await site.client.get("/identity/v3/auth/catalog", headers=admin(site))
    types = {s["type"]: s for s in r.json()["catalog"]}
    assert {"block-storage", "volumev3"} <= set(types)
    urls = {e["url"] for e in types["block-storage"]["endpoints"]}
    assert all(u.endswith("/volume/v3") for u in urls)
