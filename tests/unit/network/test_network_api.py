"""Network API in-process: networks, subnets with IPAM, ports, quotas, faults."""

from __future__ import annotations

N = "/network/v2.0"


async def test_versions_and_extensions(site, admin_headers):
    r = await site.client.get("/network")
    assert r.json()["versions"][0]["id"] == "v2.0"
    r = await site.client.get(f"{N}/extensions", headers=admin_headers)
    assert "quotas" in {e["alias"] for e in r.json()["extensions"]}


async def test_network_subnet_port_ipam(site, admin_headers):
    h = admin_headers
    r = await site.client.post(f"{N}/networks", json={"network": {"name": "net1"}}, headers=h)
    assert r.status_code == 201, r.text
    net = r.json()["network"]
    r = await site.client.post(
        f"{N}/subnets",
        json={"subnet": {"network_id": net["id"], "cidr": "192.168.5.0/29", "ip_version": 4}},
        headers=h,
    )
    assert r.status_code == 201, r.text
    subnet = r.json()["subnet"]
    assert subnet["gateway_ip"] == "192.168.5.1"
    assert subnet["allocation_pools"] == [{"start": "192.168.5.2", "end": "192.168.5.6"}]
    r = await site.client.post(
        f"{N}/subnets",
        json={"subnet": {"network_id": net["id"], "cidr": "192.168.5.0/28", "ip_version": 4}},
        headers=h,
    )
    assert r.status_code == 400 and "overlaps" in r.json()["NeutronError"]["message"]
    r = await site.client.post(
        f"{N}/subnets",
        json={"subnet": {"network_id": net["id"], "cidr": "300.1.1.0/24"}},
        headers=h,
    )
    assert r.status_code == 400 and "cidr" in r.text
    addresses = []
    for _ in range(5):
        r = await site.client.post(
            f"{N}/ports", json={"port": {"network_id": net["id"]}}, headers=h
        )
        assert r.status_code == 201, r.text
        addresses.append(r.json()["port"]["fixed_ips"][0]["ip_address"])
    assert len(set(addresses)) == 5
    r = await site.client.post(f"{N}/ports", json={"port": {"network_id": net["id"]}}, headers=h)
    assert r.status_code == 409 and "No more IP addresses" in r.text
    r = await site.client.get(f"{N}/ports?network_id={net['id']}&fields=id", headers=h)
    assert len(r.json()["ports"]) == 5 and set(r.json()["ports"][0]) == {"id"}
    r = await site.client.get(f"{N}/networks/{'0' * 8}", headers=h)
    assert r.status_code == 404 and r.json()["NeutronError"]["type"] == "NetworkNotFound"


async def test_quotas_and_default_security_group(site, admin_headers):
    h = admin_headers
    groups = (await site.client.get(f"{N}/security-groups", headers=h)).json()["security_groups"]
    assert [g["name"] for g in groups] == ["default"]
    r = await site.client.put(f"{N}/quotas/p1", json={"quota": {"network": 3}}, headers=h)
    assert r.json()["quota"]["network"] == 3
    r = await site.client.put(f"{N}/quotas/p1", json={"quota": {"bogus": 3}}, headers=h)
    assert r.status_code == 400
