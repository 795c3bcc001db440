"""Network policy (Neutron's secure-RBAC defaults): writes need ``member`` on the owner
project, a ``reader`` only reads; ``shared`` and ``router:external`` need ``admin``."""

from __future__ import annotations

from tests.unit.network.neutron_kit import N, as_, network, policy_refused

from edgefed.testkit.inprocess import InProcessSite


async def test_a_reader_reads_but_writes_nothing(site: InProcessSite) -> None:
    member, reader = as_(site, "member"), as_(site, "reader")
    net = await network(site, member)
    r = await site.client.post(
        f"{N}/subnets",
        json={"subnet": {"network_id": net["id"], "cidr": "10.1.0.0/24"}},
        headers=member,
    )
    subnet = r.json()["subnet"]
    port = (
        await site.client.post(
            f"{N}/ports", json={"port": {"network_id": net["id"]}}, headers=member
        )
    ).json()["port"]
    # Reads are fine.
    assert (await site.client.get(f"{N}/networks/{net['id']}", headers=reader)).status_code == 200
    assert (await site.client.get(f"{N}/ports/{port['id']}", headers=reader)).status_code == 200
    # Every write is refused, naming the rule.
    r = await site.client.post(f"{N}/networks", json={"network": {"name": "x"}}, headers=reader)
    policy_refused(r, "create_network")
    r = await site.client.put(
        f"{N}/networks/{net['id']}", json={"network": {"name": "y"}}, headers=reader
    )
    policy_refused(r, "update_network")
    policy_refused(
        await site.client.delete(f"{N}/networks/{net['id']}", headers=reader), "delete_network"
    )
    r = await site.client.post(
        f"{N}/subnets",
        json={"subnet": {"network_id": net["id"], "cidr": "10.2.0.0/24"}},
        headers=reader,
    )
    policy_refused(r, "create_subnet")
    r = await site.client.put(
        f"{N}/subnets/{subnet['id']}", json={"subnet": {"name": "y"}}, headers=reader
    )
    policy_refused(r, "update_subnet")
    policy_refused(
        await site.client.delete(f"{N}/subnets/{subnet['id']}", headers=reader), "delete_subnet"
    )
    r = await site.client.post(
        f"{N}/ports", json={"port": {"network_id": net["id"]}}, headers=reader
    )
    policy_refused(r, "create_port")
    r = await site.client.put(
        f"{N}/ports/{port['id']}", json={"port": {"name": "y"}}, headers=reader
    )
    policy_refused(r, "update_port")
    policy_refused(
        await site.client.delete(f"{N}/ports/{port['id']}", headers=reader), "delete_port"
    )
    # Nothing changed.
    assert (await site.client.get(f"{N}/networks/{net['id']}", headers=member)).json()["network"][
        "name"
    ] == "n"


async def test_shared_and_external_need_admin_on_create_and_update(site: InProcessSite) -> None:
    member, admin = as_(site, "member"), as_(site, "admin", "admin")
    for flag in ("shared", "router:external"):
        r = await site.client.post(
            f"{N}/networks", json={"network": {"name": "s", flag: True}}, headers=member
        )
        policy_refused(r, f"create_network:{flag}")
    # Their default value is no privilege.
    r = await site.client.post(
        f"{N}/networks", json={"network": {"name": "s", "shared": False}}, headers=member
    )
    assert r.status_code == 201, r.text
    net = r.json()["network"]
    for flag in ("shared", "router:external"):
        r = await site.client.put(
            f"{N}/networks/{net['id']}", json={"network": {flag: True}}, headers=member
        )
        policy_refused(r, f"update_network:{flag}")
    r = await site.client.get(f"{N}/networks/{net['id']}", headers=member)
    assert r.json()["network"]["shared"] is False
    assert r.json()["network"]["router:external"] is False
    # An admin may.
    r = await site.client.put(
        f"{N}/networks/{net['id']}",
        json={"network": {"shared": True, "router:external": True}},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert r.json()["network"]["shared"] is True
    assert r.json()["network"]["router:external"] is True
