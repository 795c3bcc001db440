"""The scope router on any API path: one hop, '|' fallback, '&' fan-out and merge."""

from __future__ import annotations

from pathlib import Path

from edgefed.testkit.asgi_fleet import FleetTransport
from edgefed.testkit.inprocess_fleet import admin, fleet


def scoped(headers: dict[str, str], scope: str) -> dict[str, str]:
    return {**headers, "X-Scope": scope}


async def make_image(site, headers, name):  # type: ignore[no-untyped-def]
    r = await site.client.post(
        "/image/v2/images",
        json={"name": name, "disk_format": "raw", "container_format": "bare"},
        headers=headers,
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_single_remote_site_is_one_hop(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver"], joined=True) as s:
        berlin, denver = s["Berlin"], s["Denver"]
        token = admin(berlin)
        img = await make_image(denver, admin(denver), "only-in-denver")
        r = await berlin.client.get(
            f"/image/v2/images/{img['id']}", headers=scoped(token, "{image: Denver}")
        )
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "only-in-denver"
        assert r.headers["x-edgefed-site"] == "Denver"
        # Without a scope, Berlin serves it itself and does not have it.
        r = await berlin.client.get(f"/image/v2/images/{img['id']}", headers=token)
        assert r.status_code == 404


async def test_fan_out_merges_collections_tagged_by_site(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver", "Paris"], joined=True) as s:
        for name, site in s.items():
            await make_image(site, admin(site), f"img-{name}")
        r = await s["Paris"].client.get(
            "/image/v2/images", headers=scoped(admin(s["Paris"]), "{image: *}")
        )
        assert r.status_code == 200, r.text
        images = r.json()["images"]
        assert sorted((i["name"], i["os-scope:site"]) for i in images) == [
            ("img-Berlin", "Berlin"),
            ("img-Denver", "Denver"),
            ("img-Paris", "Paris"),
        ]


async def test_fallback_on_cut_link_and_on_404(tmp_path: Path) -> None:
    transport = FleetTransport()
    async with fleet(
        tmp_path, ["Berlin", "Denver", "Paris"], joined=True, transport=transport
    ) as s:
        berlin, paris = s["Berlin"], s["Paris"]
        img = await make_image(paris, admin(paris), "in-paris")
        path = f"/image/v2/images/{img['id']}"
        # Denver answers 404: fall back to Paris.
        r = await berlin.client.get(path, headers=scoped(admin(berlin), "{image: Denver|Paris}"))
        assert r.status_code == 200 and r.json()["name"] == "in-paris"
        # Denver cut off: fall back to Paris too.
        transport.cut.add("denver.test")
        r = await berlin.client.get(path, headers=scoped(admin(berlin), "{image: Denver|Paris}"))
        assert r.status_code == 200 and r.json()["name"] == "in-paris"
        # Every alternative failing: the error names each site and why.
        transport.cut.add("paris.test")
        r = await berlin.client.get(path, headers=scoped(admin(berlin), "{glance: Denver|Paris}"))
        assert r.status_code == 503
        message = r.json()["message"]
        assert "Denver" in message and "Paris" in message and "cut" in message


async def test_write_everywhere_or_report_every_site(tmp_path: Path) -> None:
    transport = FleetTransport()
    async with fleet(tmp_path, ["Berlin", "Denver"], joined=True, transport=transport) as s:
        berlin, denver = s["Berlin"], s["Denver"]
        token = admin(berlin)
        body = {"name": "both", "disk_format": "raw", "container_format": "bare"}
        r = await berlin.client.post(
            "/image/v2/images", json=body, headers=scoped(token, "{image: Berlin&Denver}")
        )
        assert r.status_code == 201, r.text
        assert {x["site"] for x in r.json()["os-scope:results"]} == {"Berlin", "Denver"}
        for site in (berlin, denver):
            r = await site.client.get("/image/v2/images?name=both", headers=admin(site))
            assert len(r.json()["images"]) == 1
        # Denver cut: the write succeeds in Berlin but the answer says Denver failed.
        transport.cut.add("denver.test")
        r = await berlin.client.post(
            "/image/v2/images",
            json={**body, "name": "partial"},
            headers=scoped(token, "{image: Berlin&Denver}"),
        )
        assert r.status_code >= 500
        results = {x["site"]: x for x in r.json()["os-scope:results"]}
        assert results["Berlin"]["status"] == 201
        assert "error" in results["Denver"]
        assert "no silent partial success" in r.json()["message"]


async def test_bad_scopes_are_400_naming_the_problem(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver"], joined=True) as s:
        berlin = s["Berlin"]
        r = await berlin.client.get(
            "/image/v2/images", headers=scoped(admin(berlin), "{image: Berlin&&Denver}")
        )
        assert r.status_code == 400
        assert "position" in r.json()["message"]
        r = await berlin.client.get(
            "/image/v2/images", headers=scoped(admin(berlin), "{image: Tokyo}")
        )
        assert r.status_code == 400
        assert "Tokyo" in r.json()["message"]
        r = await berlin.client.get(
            "/compute/v2.1/servers", headers=scoped(admin(berlin), "{compute: Berlin")
        )
        assert r.status_code == 400
        assert "badRequest" in r.json()


async def test_version_documents_are_answered_here_whatever_the_scope(tmp_path: Path) -> None:
    """keystoneauth reads a service's version document before the call: were it routed,
    a bad scope would surface as "no supported versions" instead of its own message."""
    async with fleet(tmp_path, ["Berlin", "Denver"], joined=True) as s:
        berlin = s["Berlin"]
        for scope in ("{image: Nowhere|Denver}", "{image: Berlin&&Denver}", "{image: Denver}"):
            for path in ("/image", "/image/", "/image/versions", "/image/v2/"):
                r = await berlin.client.get(path, headers=scoped(admin(berlin), scope))
                assert r.status_code in (200, 300), (scope, path, r.text)
                assert "x-edgefed-site" not in r.headers  # not routed
                assert "v2.0" in {v["id"] for v in r.json()["versions"]}
        for path in ("/compute/v2.1", "/identity/v3/", "/volume", "/network/v2.0"):
            r = await berlin.client.get(path, headers=scoped(admin(berlin), "{compute: Nowhere}"))
            assert r.status_code in (200, 300), (path, r.text)
        # The call that follows carries the scope's error, in the user's words.
        r = await berlin.client.get(
            "/image/v2/images", headers=scoped(admin(berlin), "{image: Nowhere|Denver}")
        )
        assert r.status_code == 400
        assert r.json()["message"] == (
            "Invalid X-Scope header: unknown site 'Nowhere' (the fleet has Berlin, Denver)"
        )
