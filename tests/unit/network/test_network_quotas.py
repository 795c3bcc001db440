"""Network quotas: the document an admin reads and sets, what a project may read of it,
and the limits a create is held to (409 ``OverQuota``, nothing made)."""

from __future__ import annotations

import asyncio

from tests.unit.network.neutron_kit import (
    admin,
    as_,
    delete,
    fault,
    get,
    listed,
    network,
    port,
    post,
    project_id,
    put,
    subnet,
)

from edgefed.testkit.inprocess import InProcessSite

DEFAULTS = {
    "network": 100,
    "subnet": 100,
    "port": 500,
    "router": 10,
    "floatingip": 50,
    "security_group": 10,
    "security_group_rule": 100,
    "rbac_policy": 10,
    "subnetpool": -1,
}
ALPHA = project_id("alpha")


async def limit(site: InProcessSite, project: str, **limits: int) -> dict[str, int]:
    r = await put(site, admin(site), f"quotas/{project}", "quota", **limits)
    assert r.status_code == 200, r.text
    return r.json()["quota"]  # type: ignore[no-any-return]


def over_quota(r, resource: str) -> None:
    fault(r, 409, "OverQuota", f"Quota exceeded for resources: ['{resource}'].")


# -- the document -------------------------------------------------------------------------


async def test_a_project_starts_with_neutrons_defaults(site) -> None:
    r = await get(site, admin(site), f"quotas/{ALPHA}")
    assert r.status_code == 200 and r.json() == {"quota": DEFAULTS}
    r = await get(site, as_(site), f"quotas/{ALPHA}/default")
    assert r.json() == {"quota": DEFAULTS}


async def test_a_limit_set_is_shown_with_the_defaults_and_reset_to_them(site) -> None:
    assert await limit(site, ALPHA, network=3, port="7") == {**DEFAULTS, "network": 3, "port": 7}
    # A second update keeps what the first set.
    assert await limit(site, ALPHA, subnet=-1) == {
        **DEFAULTS,
        "network": 3,
        "port": 7,
        "subnet": -1,
    }
    assert (await get(site, as_(site), f"quotas/{ALPHA}")).json()["quota"]["network"] == 3
    # The defaults document does not move; another project is untouched.
    assert (await get(site, admin(site), f"quotas/{ALPHA}/default")).json()["quota"] == DEFAULTS
    beta = project_id("beta")
    assert (await get(site, admin(site), f"quotas/{beta}")).json()["quota"] == DEFAULTS
    assert (await delete(site, admin(site), f"quotas/{ALPHA}")).status_code == 204
    assert (await get(site, admin(site), f"quotas/{ALPHA}")).json()["quota"] == DEFAULTS


async def test_a_project_reads_its_own_quota_and_no_other(site) -> None:
    assert (await get(site, as_(site, "reader"), f"quotas/{ALPHA}")).status_code == 200
    r = await get(site, as_(site), f"quotas/{project_id('beta')}")
    assert r.status_code == 403
    assert "another project's quota" in r.json()["NeutronError"]["message"]
    assert (await get(site, as_(site), f"quotas/{project_id('beta')}/details")).status_code == 403


async def test_only_an_admin_sets_resets_or_lists_quotas(site) -> None:
    member = as_(site)
    r = await put(site, member, f"quotas/{ALPHA}", "quota", network=1000)
    assert r.status_code == 403, r.text
    assert (await delete(site, member, f"quotas/{ALPHA}")).status_code == 403
    assert (await get(site, member, "quotas")).status_code == 403
    assert (await get(site, admin(site), "quotas")).json() == {"quotas": []}
    assert (await get(site, member, f"quotas/{ALPHA}")).json()["quota"] == DEFAULTS


async def test_a_refused_quota_update_sets_none_of_its_limits(site) -> None:
    cases = [
        ({"network": 5, "bogus": 3}, "Unrecognized attribute(s) 'bogus'"),
        ({"network": 5, "port": "many"}, "'many' is not an integer (field 'port')"),
        ({"network": 5, "port": None}, "'None' is not an integer (field 'port')"),
        ({"network": -2}, "'-2' should be greater than or equal to -1 (field 'network')"),
        ({"network": 2**31}, f"'{2**31}' should be at most {2**31 - 1} (field 'network')"),
    ]
    for body, message in cases:
        r = await put(site, admin(site), f"quotas/{ALPHA}", "quota", **body)
        fault(r, 400, "InvalidInput", message)
    assert (await get(site, admin(site), f"quotas/{ALPHA}")).json()["quota"] == DEFAULTS
    # The largest limit a 32-bit column holds is taken.
    assert (await limit(site, ALPHA, network=2**31 - 1))["network"] == 2**31 - 1


async def test_the_details_count_what_the_project_uses(site) -> None:
    h = as_(site)
    net = await network(site, h)
    await subnet(site, h, net["id"])
    await port(site, h, net["id"])
    await port(site, h, net["id"])
    r = await get(site, h, f"quotas/{ALPHA}/details")
    assert r.status_code == 200, r.text
    details = r.json()["quota"]
    assert details["network"] == {"limit": 100, "used": 1, "reserved": 0}
    assert details["subnet"]["used"] == 1 and details["port"]["used"] == 2
    # The default security group (made with the first port) and its four rules.
    assert details["security_group"]["used"] == 1
    assert details["security_group_rule"]["used"] == 4
    assert details["router"] == {"limit": 10, "used": 0, "reserved": 0}
    assert set(details) == set(DEFAULTS)


# -- limits held -----------------------------------------------------------------------------


async def test_a_project_makes_networks_up_to_its_limit(site) -> None:
    h = as_(site)
    await limit(site, ALPHA, network=2)
    await network(site, h, "one")
    await network(site, h, "two")
    over_quota(await post(site, h, "networks", "network", name="three"), "network")
    assert sorted(n["name"] for n in await listed(site, h, "networks", "networks")) == [
        "one",
        "two",
    ]
    # Another project counts its own.
    await network(site, as_(site, project="beta"), "theirs")
    # Freeing one makes room; raising the limit too; -1 lifts it.
    (one,) = await listed(site, h, "networks?name=one", "networks")
    assert (await delete(site, h, f"networks/{one['id']}")).status_code == 204
    await network(site, h, "three")
    over_quota(await post(site, h, "networks", "network", name="four"), "network")
    await limit(site, ALPHA, network=-1)
    for n in range(3):
        await network(site, h, f"more-{n}")


async def test_a_limit_of_zero_refuses_the_first(site) -> None:
    await limit(site, ALPHA, network=0)
    over_quota(await post(site, as_(site), "networks", "network", name="n"), "network")
    assert await listed(site, admin(site), "networks", "networks") == []


async def test_an_admin_creating_for_a_project_is_held_to_its_limit(site) -> None:
    await limit(site, ALPHA, network=1)
    await network(site, as_(site), "ours")
    r = await post(site, admin(site), "networks", "network", name="x", project_id=ALPHA)
    over_quota(r, "network")
    # The admin's own project has its own count.
    await network(site, admin(site), "admins")


async def test_subnets_count_against_the_networks_project(site) -> None:
    h = as_(site)
    await limit(site, ALPHA, subnet=1)
    net = await network(site, h)
    await subnet(site, h, net["id"], "10.1.0.0/24")
    other = await network(site, h, "other")
    over_quota(
        await post(site, h, "subnets", "subnet", network_id=other["id"], cidr="10.2.0.0/24"),
        "subnet",
    )
    assert len(await listed(site, h, "subnets", "subnets")) == 1


async def test_ports_count_against_the_ports_project(site) -> None:
    h = as_(site)
    await limit(site, ALPHA, port=2)
    net = await network(site, h)
    await subnet(site, h, net["id"], "10.1.0.0/24")
    first, _ = await port(site, h, net["id"]), await port(site, h, net["id"])
    over_quota(await post(site, h, "ports", "port", network_id=net["id"]), "port")
    # The refused port took no address: the next one after a delete gets the freed one.
    assert (await delete(site, h, f"ports/{first['id']}")).status_code == 204
    again = await port(site, h, net["id"])
    assert again["fixed_ips"][0]["ip_address"] == first["fixed_ips"][0]["ip_address"]


async def test_ports_on_a_shared_network_count_for_whoever_makes_them(site) -> None:
    shared = await network(site, admin(site), "public", shared=True)
    await subnet(site, admin(site), shared["id"], "203.0.113.0/24")
    beta = project_id("beta")
    await limit(site, beta, port=1)
    await port(site, as_(site, project="beta"), shared["id"])
    over_quota(
        await post(site, as_(site, project="beta"), "ports", "port", network_id=shared["id"]),
        "port",
    )
    # The network's owner is not held to beta's limit.
    await port(site, admin(site), shared["id"])


async def test_racing_creates_do_not_overshoot_a_limit(site) -> None:
    h = as_(site)
    await limit(site, ALPHA, network=3)
    answers = await asyncio.gather(
        *(post(site, h, "networks", "network", name=f"n{n}") for n in range(6))
    )
    assert sorted(r.status_code for r in answers) == [201] * 3 + [409] * 3
    for r in answers:
        if r.status_code == 409:
            over_quota(r, "network")
    assert len(await listed(site, h, "networks", "networks")) == 3


async def test_racing_ports_share_a_limit_and_never_an_address(site) -> None:
    h = as_(site)
    await limit(site, ALPHA, port=4)
    net = await network(site, h)
    await subnet(site, h, net["id"], "10.1.0.0/24")
    answers = await asyncio.gather(
        *(post(site, h, "ports", "port", network_id=net["id"]) for _ in range(7))
    )
    made = [r.json()["port"] for r in answers if r.status_code == 201]
    assert len(made) == 4
    assert all(
        r.json()["NeutronError"]["type"] == "OverQuota" for r in answers if r.status_code != 201
    )
    addresses = {p["fixed_ips"][0]["ip_address"] for p in made}
    assert addresses == {"10.1.0.2", "10.1.0.3", "10.1.0.4", "10.1.0.5"}
