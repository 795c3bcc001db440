"""The network service's own documents: versions, the v2.0 resource index and the
extensions a Neutron client asks about before it calls anything."""

from __future__ import annotations

from tests.unit.network.neutron_kit import N, as_, fault, get

from edgefed.services.network.service import EXTENSIONS


async def test_the_version_document_points_at_v2(site) -> None:
    for path in ("/network", "/network/"):
        r = await site.client.get(path)
        assert r.status_code == 200, path
        assert r.json() == {
            "versions": [
                {
                    "id": "v2.0",
                    "status": "CURRENT",
                    "links": [{"rel": "self", "href": "http://berlin.test/network/v2.0/"}],
                }
            ]
        }


async def test_the_v2_index_links_every_collection(site) -> None:
    for path in (N, f"{N}/"):
        r = await site.client.get(path, headers=as_(site))
        assert r.status_code == 200, path
        resources = {res["collection"]: res for res in r.json()["resources"]}
        assert set(resources) == {
            "networks",
            "subnets",
            "ports",
            "security-groups",
            "security-group-rules",
            "quotas",
        }
        link = resources["security-groups"]["links"][0]
        assert link == {"rel": "self", "href": f"http://berlin.test{N}/security-groups"}
        assert resources["security-groups"]["name"] == "security_group"


async def test_every_extension_is_listed_and_shown_by_its_alias(site) -> None:
    h = as_(site)
    listed = (await get(site, h, "extensions")).json()["extensions"]
    assert [e["alias"] for e in listed] == [alias for alias, _, _ in EXTENSIONS]
    assert {"quotas", "security-group", "port-security", "net-mtu"} <= {e["alias"] for e in listed}
    for extension in listed:
        r = await get(site, h, f"extensions/{extension['alias']}")
        assert r.status_code == 200 and r.json() == {"extension": extension}
        assert set(extension) == {"alias", "name", "description", "updated", "links"}


async def test_an_extension_this_cloud_lacks_is_not_found(site) -> None:
    # Clients probe for routers and floating IPs before offering them.
    for alias in ("router", "floatingip", "dns-integration"):
        fault(
            await get(site, as_(site), f"extensions/{alias}"),
            404,
            "ExtensionNotFound",
            f"Extension with alias {alias} does not exist",
        )


async def test_what_the_service_does_not_route_is_neutrons_404_or_405(site) -> None:
    h = as_(site)
    r = await site.client.post(f"{N}/routers", json={"router": {}}, headers=h)
    fault(r, 404, "NotFound", f"The resource could not be found: POST {N}/routers")
    r = await site.client.delete(f"{N}/networks", headers=h)
    fault(r, 405, "MethodNotAllowed", f"Method DELETE is not allowed on {N}/networks")
    r = await site.client.get(f"{N}/networks")
    fault(r, 401, "Unauthorized", "The request you have made requires authentication.")
