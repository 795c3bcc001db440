"""Subnets through the Neutron API: IPAM's defaults and refusals in Neutron's words,
who may make a subnet on which network, updates, deletes while addresses are held."""

from __future__ import annotations

from typing import Any

from tests.unit.network.neutron_kit import (
    admin,
    as_,
    delete,
    fault,
    fixed_attributes,
    get,
    listed,
    network,
    policy_refused,
    port,
    post,
    project_id,
    put,
    refused_updates,
    subnet,
)

from edgefed.testkit.inprocess import InProcessSite


async def _refused(site: InProcessSite, body: dict[str, Any], status: int, kind: str, text: str):
    """Create a subnet with ``body`` on a fresh network: refused, and nothing made."""
    h = as_(site)
    net = await network(site, h)
    fault(
        await post(site, h, "subnets", "subnet", **{"network_id": net["id"], **body}),
        status,
        kind,
        text,
    )
    assert await listed(site, h, "subnets", "subnets") == []


# -- defaults -------------------------------------------------------------------------------


async def test_a_v4_subnet_gets_the_first_address_as_gateway_and_the_rest_as_pool(site) -> None:
    h = as_(site)
    net = await network(site, h)
    made = await subnet(site, h, net["id"], "192.168.7.0/24", name="lan")
    assert (made["name"], made["cidr"], made["ip_version"]) == ("lan", "192.168.7.0/24", 4)
    assert made["gateway_ip"] == "192.168.7.1"
    assert made["allocation_pools"] == [{"start": "192.168.7.2", "end": "192.168.7.254"}]
    assert (made["dns_nameservers"], made["host_routes"], made["enable_dhcp"]) == ([], [], True)
    assert made["network_id"] == net["id"] and made["project_id"] == project_id("alpha")
    assert (made["ipv6_ra_mode"], made["subnetpool_id"], made["service_types"]) == (None, None, [])
    assert (await get(site, h, f"subnets/{made['id']}")).json()["subnet"] == made


async def test_a_v6_subnet_pools_every_address_but_the_routers(site) -> None:
    h = as_(site)
    net = await network(site, h)
    made = await subnet(site, h, net["id"], "fd00:1::/64")
    assert (made["ip_version"], made["gateway_ip"]) == (6, "fd00:1::1")
    # No broadcast in IPv6: the pool runs to the last address.
    assert made["allocation_pools"] == [
        {"start": "fd00:1::2", "end": "fd00:1::ffff:ffff:ffff:ffff"}
    ]


async def test_a_cidr_with_host_bits_is_stored_as_its_network(site) -> None:
    h = as_(site)
    net = await network(site, h)
    made = await subnet(site, h, net["id"], "10.2.0.77/24")
    assert (made["cidr"], made["gateway_ip"]) == ("10.2.0.0/24", "10.2.0.1")


async def test_a_chosen_gateway_splits_the_default_pool_around_it(site) -> None:
    h = as_(site)
    net = await network(site, h)
    made = await subnet(site, h, net["id"], "10.4.0.0/28", gateway_ip="10.4.0.7")
    assert made["gateway_ip"] == "10.4.0.7"
    assert made["allocation_pools"] == [
        {"start": "10.4.0.1", "end": "10.4.0.6"},
        {"start": "10.4.0.8", "end": "10.4.0.14"},
    ]


async def test_a_gateway_of_null_means_none_and_pools_every_host(site) -> None:
    h = as_(site)
    net = await network(site, h)
    made = await subnet(site, h, net["id"], "10.5.0.0/29", gateway_ip=None)
    assert made["gateway_ip"] is None
    assert made["allocation_pools"] == [{"start": "10.5.0.1", "end": "10.5.0.6"}]
    # The first port then gets the first address.
    assert (await port(site, h, net["id"]))["fixed_ips"][0]["ip_address"] == "10.5.0.1"


async def test_chosen_pools_dns_and_dhcp_are_kept(site) -> None:
    h = as_(site)
    net = await network(site, h)
    made = await subnet(
        site,
        h,
        net["id"],
        "10.6.0.0/24",
        allocation_pools=[{"start": "10.6.0.100", "end": "10.6.0.102"}],
        dns_nameservers=["192.0.2.53", "2001:db8::53"],
        enable_dhcp=False,
    )
    assert made["allocation_pools"] == [{"start": "10.6.0.100", "end": "10.6.0.102"}]
    assert made["dns_nameservers"] == ["192.0.2.53", "2001:db8::53"]
    assert made["enable_dhcp"] is False
    # Ports are given addresses from the pool, not from the start of the CIDR.
    got = [(await port(site, h, net["id"]))["fixed_ips"][0]["ip_address"] for _ in range(3)]
    assert got == ["10.6.0.100", "10.6.0.101", "10.6.0.102"]
    fault(
        await post(site, h, "ports", "port", network_id=net["id"]),
        409,
        "IpAddressGenerationFailure",
        f"No more IP addresses available on network {net['id']}.",
    )


# -- refusals -------------------------------------------------------------------------------


# What IPAM refuses, in Neutron's words: (body beyond network_id, status, type, message).
REFUSALS: list[tuple[dict[str, Any], int, str, str]] = [
    (
        {"cidr": "300.1.1.0/24"},
        400,
        "InvalidInput",
        "'300.1.1.0/24' is not a valid IP subnet (field 'cidr')",
    ),
    (
        {"cidr": "10.2.0.0/24", "ip_version": 6},
        400,
        "InvalidInput",
        "Cidr 10.2.0.0/24 does not match ip_version 6",
    ),
    (
        {"cidr": "10.2.0.0/24", "ip_version": 5},
        400,
        "InvalidInput",
        "5 is not in [4, 6] (field 'ip_version')",
    ),
    (
        {"cidr": "10.2.0.0/31"},
        400,
        "InvalidInput",
        "Cidr 10.2.0.0/31 is too small: it leaves no address for hosts",
    ),
    (
        {"cidr": "10.2.0.0/24", "gateway_ip": "10.3.0.1"},
        400,
        "InvalidInput",
        "Gateway IP 10.3.0.1 is not in subnet 10.2.0.0/24",
    ),
    (
        {"cidr": "10.2.0.0/24", "gateway_ip": "gw"},
        400,
        "InvalidInput",
        "'gw' is not a valid IP address (field 'gateway_ip')",
    ),
    (
        {"cidr": "10.2.0.0/24", "dns_nameservers": ["dns.example"]},
        400,
        "InvalidInput",
        "'dns.example' is not a valid nameserver",
    ),
    (
        {"cidr": "10.2.0.0/24", "dns_nameservers": "192.0.2.53"},
        400,
        "InvalidInput",
        "dns_nameservers must be a list",
    ),
    (
        {"cidr": "10.2.0.0/24", "allocation_pools": [{"start": "10.2.0.1", "end": "10.2.0.5"}]},
        409,
        "GatewayConflictWithAllocationPools",
        "Gateway ip 10.2.0.1 conflicts with allocation pool 10.2.0.1-10.2.0.5.",
    ),
    (
        {
            "cidr": "10.2.0.0/24",
            "allocation_pools": [{"start": "10.2.0.10", "end": "10.3.0.5"}],
        },
        400,
        "InvalidAllocationPool",
        "The allocation pool 10.2.0.10-10.3.0.5 spans beyond the subnet cidr 10.2.0.0/24.",
    ),
    (
        {
            "cidr": "10.2.0.0/24",
            "allocation_pools": [{"start": "10.2.0.20", "end": "10.2.0.10"}],
        },
        400,
        "InvalidAllocationPool",
        "The allocation pool 10.2.0.20-10.2.0.10 spans beyond",
    ),
    (
        {"cidr": "10.2.0.0/24", "allocation_pools": [{"start": "10.2.0.10"}]},
        400,
        "InvalidInput",
        "invalid allocation pool {'start': '10.2.0.10'}",
    ),
    (
        {"cidr": "10.2.0.0/24", "allocation_pools": {"start": "10.2.0.10"}},
        400,
        "InvalidInput",
        "allocation_pools must be a list of {start, end}",
    ),
    (
        {"cidr": "10.2.0.0/24", "enable_dhcp": "yes"},
        400,
        "InvalidInput",
        "'yes' cannot be converted to boolean (field 'enable_dhcp')",
    ),
    ({"cidr": "10.2.0.0/24", "name": "x" * 256}, 400, "InvalidInput", "(field 'name')"),
]


async def test_what_ipam_refuses_is_refused_in_neutrons_words(site) -> None:
    h = as_(site)
    net = await network(site, h)
    for body, status, kind, text in REFUSALS:
        r = await post(site, h, "subnets", "subnet", network_id=net["id"], **body)
        fault(r, status, kind, text)
    assert await listed(site, h, "subnets", "subnets") == []


async def test_a_subnet_needs_a_cidr_and_a_network(site) -> None:
    await _refused(
        site,
        {},
        400,
        "BadRequest",
        "Bad subnets request: a subnetpool must be specified in the absence of a cidr.",
    )
    fault(
        await post(site, as_(site), "subnets", "subnet", cidr="10.9.0.0/24"),
        400,
        "HTTPBadRequest",
        "Failed to parse request. Required attribute 'network_id' not specified",
    )


async def test_overlapping_subnets_on_one_network_are_refused_but_not_across_networks(site):
    h = as_(site)
    net, other = await network(site, h), await network(site, h, "other")
    await subnet(site, h, net["id"], "10.2.0.0/24")
    for cidr in ("10.2.0.0/24", "10.2.0.128/25", "10.0.0.0/8"):
        fault(
            await post(site, h, "subnets", "subnet", network_id=net["id"], cidr=cidr),
            400,
            "InvalidInput",
            f"for network: {net['id']} overlaps with another subnet",
        )
    # The same range on another network is another L2 domain.
    assert (await subnet(site, h, other["id"], "10.2.0.0/24"))["cidr"] == "10.2.0.0/24"
    # v4 and v6 side by side on one network.
    await subnet(site, h, net["id"], "fd00:2::/64")
    assert len(await listed(site, h, f"subnets?network_id={net['id']}", "subnets")) == 2


async def test_a_subnet_goes_on_a_network_the_caller_owns(site) -> None:
    theirs = await network(site, as_(site, project="beta"), "theirs")
    fault(
        await post(
            site, as_(site), "subnets", "subnet", network_id=theirs["id"], cidr="10.1.0.0/24"
        ),
        404,
        "NetworkNotFound",
        f"Network {theirs['id']} could not be found.",
    )
    missing = "00000000-0000-0000-0000-000000000000"
    fault(
        await post(site, as_(site), "subnets", "subnet", network_id=missing, cidr="10.1.0.0/24"),
        404,
        "NetworkNotFound",
        f"Network {missing} could not be found.",
    )


async def test_a_shared_network_takes_subnets_from_its_owner_only(site) -> None:
    shared = await network(site, admin(site), "public", shared=True)
    policy_refused(
        await post(
            site, as_(site), "subnets", "subnet", network_id=shared["id"], cidr="10.1.0.0/24"
        ),
        "create_subnet",
    )
    made = await subnet(site, admin(site), shared["id"])
    # Everyone sees a shared network's subnets; they belong to the network's project.
    assert made["project_id"] == project_id("admin")
    seen = await listed(site, as_(site, project="beta"), "subnets", "subnets")
    assert [s["id"] for s in seen] == [made["id"]]
    r = await get(site, as_(site, project="beta"), f"subnets/{made['id']}")
    assert r.status_code == 200
    policy_refused(
        await put(site, as_(site, project="beta"), f"subnets/{made['id']}", "subnet", name="x"),
        "update_subnet",
    )


async def test_another_projects_subnet_does_not_exist_for_the_caller(site) -> None:
    h = as_(site)
    net = await network(site, h)
    made = await subnet(site, h, net["id"])
    beta = as_(site, project="beta")
    assert await listed(site, beta, "subnets", "subnets") == []
    message = f"Subnet {made['id']} could not be found."
    fault(await get(site, beta, f"subnets/{made['id']}"), 404, "SubnetNotFound", message)
    fault(await delete(site, beta, f"subnets/{made['id']}"), 404, "SubnetNotFound", message)
    assert (await get(site, h, f"subnets/{made['id']}")).status_code == 200


# -- update and delete --------------------------------------------------------------------


async def test_an_update_changes_name_dns_and_dhcp_only(site) -> None:
    h = as_(site)
    net = await network(site, h)
    made = await subnet(site, h, net["id"], dns_nameservers=["192.0.2.53"])
    r = await put(
        site,
        h,
        f"subnets/{made['id']}",
        "subnet",
        name="renamed",
        description="d",
        dns_nameservers=["192.0.2.1", "192.0.2.2"],
        enable_dhcp=False,
    )
    assert r.status_code == 200, r.text
    updated = r.json()["subnet"]
    assert (updated["name"], updated["description"]) == ("renamed", "d")
    assert updated["dns_nameservers"] == ["192.0.2.1", "192.0.2.2"]
    assert updated["enable_dhcp"] is False
    assert (updated["cidr"], updated["gateway_ip"]) == (made["cidr"], made["gateway_ip"])
    # null empties the DNS list.
    r = await put(site, h, f"subnets/{made['id']}", "subnet", dns_nameservers=None)
    assert r.json()["subnet"]["dns_nameservers"] == []


async def test_a_refused_subnet_update_changes_nothing(site) -> None:
    h = as_(site)
    net = await network(site, h)
    made = await subnet(site, h, net["id"])
    await refused_updates(
        site,
        h,
        f"subnets/{made['id']}",
        "subnet",
        [
            ({"name": "x", "dns_nameservers": "1.1.1.1"}, 400, "InvalidInput", "must be a list"),
            ({"name": "x", "enable_dhcp": 1}, 400, "InvalidInput", "(field 'enable_dhcp')"),
        ],
    )


async def test_a_subnet_holding_addresses_is_not_deleted(site) -> None:
    h = as_(site)
    net = await network(site, h)
    made = await subnet(site, h, net["id"])
    holder = await port(site, h, net["id"])
    fault(
        await delete(site, h, f"subnets/{made['id']}"),
        409,
        "SubnetInUse",
        f"Unable to complete operation on subnet {made['id']}: "
        "One or more ports have an IP allocation from this subnet.",
    )
    assert (await get(site, h, f"subnets/{made['id']}")).status_code == 200
    assert (await delete(site, h, f"ports/{holder['id']}")).status_code == 204
    assert (await delete(site, h, f"subnets/{made['id']}")).status_code == 204
    fault(await get(site, h, f"subnets/{made['id']}"), 404, "SubnetNotFound")
    assert (await get(site, h, f"networks/{net['id']}")).json()["network"]["subnets"] == []


async def test_after_its_subnet_goes_the_cidr_may_be_used_again(site) -> None:
    h = as_(site)
    net = await network(site, h)
    first = await subnet(site, h, net["id"], "10.7.0.0/24")
    assert (await delete(site, h, f"subnets/{first['id']}")).status_code == 204
    again = await subnet(site, h, net["id"], "10.7.0.0/25")
    assert again["cidr"] == "10.7.0.0/25"


async def test_subnets_filter_by_network_and_any_attribute(site) -> None:
    h = as_(site)
    a, b = await network(site, h, "a"), await network(site, h, "b")
    sa = await subnet(site, h, a["id"], "10.1.0.0/24", name="sa")
    sb = await subnet(site, h, b["id"], "10.1.0.0/24", name="sb", enable_dhcp=False)
    s6 = await subnet(site, h, b["id"], "fd00:3::/64", name="s6")

    async def ids(query: str) -> set[str]:
        return {s["id"] for s in await listed(site, h, f"subnets?{query}", "subnets")}

    assert await ids(f"network_id={a['id']}") == {sa["id"]}
    assert await ids(f"network_id={a['id']}&network_id={b['id']}") == {sa["id"], sb["id"], s6["id"]}
    assert await ids("ip_version=6") == {s6["id"]}
    assert await ids("enable_dhcp=false") == {sb["id"]}
    assert await ids("cidr=10.1.0.0/24") == {sa["id"], sb["id"]}
    assert await ids(f"network_id={b['id']}&ip_version=4") == {sb["id"]}
    found = await listed(site, h, "subnets?name=s6&fields=cidr&fields=gateway_ip", "subnets")
    assert found == [{"cidr": "fd00:3::/64", "gateway_ip": "fd00:3::1"}]


async def test_an_update_of_what_a_subnet_cannot_change_is_refused_not_ignored(site) -> None:
    h = as_(site)
    net = await network(site, h)
    made = await subnet(site, h, net["id"], "10.1.0.0/24")
    other = await network(site, h, "other")
    read_only = {
        "cidr": "10.9.0.0/24",
        "network_id": other["id"],
        "ip_version": 6,
        "project_id": project_id("beta"),
    }
    unsupported = {
        "gateway_ip": "10.1.0.254",
        "allocation_pools": [{"start": "10.1.0.100", "end": "10.1.0.200"}],
        "host_routes": [{"destination": "0.0.0.0/0", "nexthop": "10.1.0.1"}],
    }
    cases = fixed_attributes(read_only, unsupported)
    await refused_updates(site, h, f"subnets/{made['id']}", "subnet", cases)
