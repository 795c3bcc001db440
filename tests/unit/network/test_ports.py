"""Ports through the Neutron API: addresses chosen or given, MACs, who may plug into
which network, updates, and what a refusal leaves behind (nothing)."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.unit.network.neutron_kit import (
    admin,
    as_,
    default_group,
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


async def _lan(site: InProcessSite, cidr: str = "10.1.0.0/28") -> tuple[dict[str, Any], ...]:
    """A network of alpha's with one subnet."""
    h = as_(site)
    net = await network(site, h, "lan")
    return net, await subnet(site, h, net["id"], cidr)


def addresses(p: dict[str, Any]) -> list[str]:
    return [ip["ip_address"] for ip in p["fixed_ips"]]


# -- what a new port looks like -----------------------------------------------------------


async def test_a_new_port_gets_the_first_free_address_a_mac_and_the_default_group(site) -> None:
    h = as_(site)
    net, sub = await _lan(site)
    made = await port(site, h, net["id"], name="eth0")
    assert made["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.1.0.2"}]
    assert made["mac_address"].startswith("fa:16:3e:") and len(made["mac_address"]) == 17
    assert made["security_groups"] == [(await default_group(site, h))["id"]]
    assert (made["name"], made["status"], made["admin_state_up"]) == ("eth0", "DOWN", True)
    assert (made["device_id"], made["device_owner"]) == ("", "")
    assert made["project_id"] == project_id("alpha") and made["port_security_enabled"] is True
    assert (await get(site, h, f"ports/{made['id']}")).json()["port"] == made


async def test_ports_never_share_an_address_or_a_mac(site) -> None:
    h = as_(site)
    net, _ = await _lan(site)
    made = [await port(site, h, net["id"]) for _ in range(5)]
    assert [addresses(p)[0] for p in made] == [f"10.1.0.{n}" for n in range(2, 7)]
    assert len({p["mac_address"] for p in made}) == 5
    # A freed address is the first handed out again.
    assert (await delete(site, h, f"ports/{made[1]['id']}")).status_code == 204
    assert addresses(await port(site, h, net["id"])) == ["10.1.0.3"]


async def test_a_port_on_a_network_without_subnets_has_no_address(site) -> None:
    h = as_(site)
    net = await network(site, h)
    assert (await port(site, h, net["id"]))["fixed_ips"] == []


async def test_a_port_prefers_the_v4_subnet_and_takes_any_subnet_it_names(site) -> None:
    h = as_(site)
    net = await network(site, h)
    v6 = await subnet(site, h, net["id"], "fd00:9::/64")
    v4 = await subnet(site, h, net["id"], "10.9.0.0/24")
    assert addresses(await port(site, h, net["id"])) == ["10.9.0.2"]
    both = await port(
        site, h, net["id"], fixed_ips=[{"subnet_id": v4["id"]}, {"subnet_id": v6["id"]}]
    )
    assert both["fixed_ips"] == [
        {"subnet_id": v4["id"], "ip_address": "10.9.0.3"},
        {"subnet_id": v6["id"], "ip_address": "fd00:9::2"},
    ]


async def test_an_address_asked_for_is_given_once(site) -> None:
    h = as_(site)
    net, sub = await _lan(site)
    made = await port(site, h, net["id"], fixed_ips=[{"ip_address": "10.1.0.9"}])
    assert made["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.1.0.9"}]
    fault(
        await post(
            site, h, "ports", "port", network_id=net["id"], fixed_ips=[{"ip_address": "10.1.0.9"}]
        ),
        409,
        "IpAddressAlreadyAllocated",
        f"IP address or MAC address already in use on network {net['id']}.",
    )
    # The automatic choice steps over it.
    got = [addresses(await port(site, h, net["id"]))[0] for _ in range(8)]
    assert "10.1.0.9" not in got and got[-1] == "10.1.0.10"


async def test_a_mac_asked_for_is_kept_in_lower_case_and_given_once(site) -> None:
    h = as_(site)
    net, _ = await _lan(site)
    made = await port(site, h, net["id"], mac_address="FA:16:3E:00:00:01")
    assert made["mac_address"] == "fa:16:3e:00:00:01"
    fault(
        await post(site, h, "ports", "port", network_id=net["id"], mac_address="fa:16:3e:00:00:01"),
        409,
        "IpAddressAlreadyAllocated",
    )
    assert len(await listed(site, h, "ports", "ports")) == 1


async def test_a_trusted_owners_port_is_in_no_group(site) -> None:
    h = as_(site)
    net, _ = await _lan(site)
    dhcp = await port(site, h, net["id"], device_owner="network:dhcp", device_id="dhcp-1")
    assert dhcp["security_groups"] == []
    # Unless groups are named.
    default = await default_group(site, h)
    router = await port(
        site, h, net["id"], device_owner="network:router_interface", security_groups=[default["id"]]
    )
    assert router["security_groups"] == [default["id"]]


# -- refusals ---------------------------------------------------------------------------------


async def test_what_a_port_refuses_leaves_no_port_and_no_address_taken(site) -> None:
    h = as_(site)
    net, sub = await _lan(site)
    v6 = await subnet(site, h, net["id"], "fd00:8::/64")
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({"fixed_ips": [{"ip_address": "10.9.0.5"}]}, 409, "InvalidIpForNetwork",
         f"No subnet of network {net['id']} matches fixed IP {{'ip_address': '10.9.0.5'}}."),
        ({"fixed_ips": [{"subnet_id": sub["id"], "ip_address": "fd00:8::5"}]}, 409,
         "InvalidIpForSubnet", "IP address fd00:8::5 is not a valid IP for the specified subnet."),
        ({"fixed_ips": [{"ip_address": "ten"}]}, 400, "InvalidInput", "invalid fixed IP: 'ten'"),
        ({"fixed_ips": [{"subnet_id": "nope"}]}, 404, "SubnetNotFound",
         "Subnet nope could not be found."),
        ({"fixed_ips": [{}]}, 400, "InvalidInput",
         "fixed IP {} needs a subnet_id or an ip_address"),
        ({"fixed_ips": "10.1.0.5"}, 400, "InvalidInput",
         "fixed_ips must be a list of {subnet_id, ip_address}"),
        ({"mac_address": "fa:16:3e:00:00"}, 400, "InvalidInput",
         "'fa:16:3e:00:00' is not a valid MAC address (field 'mac_address')"),
        ({"admin_state_up": "false"}, 400, "InvalidInput",
         "'false' cannot be converted to boolean (field 'admin_state_up')"),
        ({"port_security_enabled": False}, 400, "InvalidInput",
         "disabling port security is not supported by this cloud"),
        ({"security_groups": "default"}, 400, "InvalidInput",
         "'default' is not a list of security group ids (field 'security_groups')"),
        ({"name": "a\x00"}, 400, "InvalidInput", "(field 'name')"),
        ({"device_owner": 5}, 400, "InvalidInput", "(field 'device_owner')"),
        # The second of two addresses fails: the first is not kept either.
        ({"fixed_ips": [{"subnet_id": sub["id"]},
                        {"subnet_id": v6["id"], "ip_address": "10.1.0.3"}]},
         409, "InvalidIpForSubnet", "IP address 10.1.0.3 is not a valid IP"),
    ]  # fmt: skip
    for body, status, kind, text in cases:
        fault(
            await post(site, h, "ports", "port", network_id=net["id"], **body), status, kind, text
        )
    assert await listed(site, h, "ports", "ports") == []
    assert addresses(await port(site, h, net["id"])) == ["10.1.0.2"]


async def test_a_port_needs_a_network_the_caller_sees(site) -> None:
    fault(
        await post(site, as_(site), "ports", "port", name="p"),
        400,
        "HTTPBadRequest",
        "Failed to parse request. Required attribute 'network_id' not specified",
    )
    theirs = await network(site, as_(site, project="beta"), "theirs")
    fault(
        await post(site, as_(site), "ports", "port", network_id=theirs["id"]),
        404,
        "NetworkNotFound",
        f"Network {theirs['id']} could not be found.",
    )


async def test_anyone_plugs_into_a_shared_network_and_owns_the_port(site) -> None:
    shared = await network(site, admin(site), "public", shared=True)
    await subnet(site, admin(site), shared["id"], "203.0.113.0/24")
    beta = as_(site, project="beta")
    made = await port(site, beta, shared["id"])
    assert made["project_id"] == project_id("beta")
    assert addresses(made) == ["203.0.113.2"]
    # The port is beta's: alpha sees neither it nor its address; the admin sees both.
    assert await listed(site, as_(site), "ports", "ports") == []
    fault(await get(site, as_(site), f"ports/{made['id']}"), 404, "PortNotFound")
    assert [p["id"] for p in await listed(site, admin(site), "ports", "ports")] == [made["id"]]
    # Its owner may delete it; the network's owner may not delete the network under it.
    r = await delete(site, beta, f"ports/{made['id']}")
    assert r.status_code == 204


async def test_a_reader_plugs_nothing_in(site) -> None:
    net, _ = await _lan(site)
    policy_refused(
        await post(site, as_(site, "reader"), "ports", "port", network_id=net["id"]), "create_port"
    )
    assert await listed(site, as_(site), "ports", "ports") == []


# -- update and delete --------------------------------------------------------------------


async def test_an_update_sets_names_device_and_state(site) -> None:
    h = as_(site)
    net, _ = await _lan(site)
    made = await port(site, h, net["id"])
    r = await put(
        site,
        h,
        f"ports/{made['id']}",
        "port",
        name="eth1",
        description="uplink",
        device_id="vm-7",
        device_owner="compute:nova",
        admin_state_up=False,
    )
    assert r.status_code == 200, r.text
    updated = r.json()["port"]
    assert (updated["name"], updated["description"]) == ("eth1", "uplink")
    assert (updated["device_id"], updated["device_owner"]) == ("vm-7", "compute:nova")
    assert updated["admin_state_up"] is False
    assert (updated["fixed_ips"], updated["mac_address"]) == (
        made["fixed_ips"],
        made["mac_address"],
    )
    found = await listed(site, h, "ports?device_id=vm-7", "ports")
    assert [p["id"] for p in found] == [made["id"]]


async def test_a_refused_port_update_changes_nothing(site) -> None:
    h = as_(site)
    net, _ = await _lan(site)
    made = await port(site, h, net["id"])
    fault(
        await put(site, h, f"ports/{made['id']}", "port", name="x", admin_state_up="false"),
        400,
        "InvalidInput",
        "(field 'admin_state_up')",
    )
    fault(
        await put(site, h, f"ports/{made['id']}", "port", name="x", security_groups=["nope"]),
        404,
        "SecurityGroupNotFound",
    )
    policy_refused(
        await put(site, as_(site, "reader"), f"ports/{made['id']}", "port", name="x"),
        "update_port",
    )
    fault(
        await put(site, as_(site, project="beta"), f"ports/{made['id']}", "port", name="x"),
        404,
        "PortNotFound",
    )
    assert (await get(site, h, f"ports/{made['id']}")).json()["port"] == made


async def test_deleting_a_port_frees_its_address_for_a_subnet_delete(site) -> None:
    h = as_(site)
    net, sub = await _lan(site)
    made = await port(site, h, net["id"])
    fault(await delete(site, h, f"subnets/{sub['id']}"), 409, "SubnetInUse")
    assert (await delete(site, h, f"ports/{made['id']}")).status_code == 204
    fault(
        await delete(site, h, f"ports/{made['id']}"),
        404,
        "PortNotFound",
        f"Port {made['id']} could not be found.",
    )
    assert (await delete(site, h, f"subnets/{sub['id']}")).status_code == 204


async def test_ports_filter_by_network_device_and_any_attribute(site) -> None:
    h = as_(site)
    a, _ = await _lan(site)
    b = await network(site, h, "b")
    await subnet(site, h, b["id"], "10.2.0.0/24")
    pa = await port(site, h, a["id"], device_id="vm-1", device_owner="compute:nova")
    pb = await port(site, h, b["id"], device_id="vm-1", admin_state_up=False)
    pc = await port(site, h, b["id"], device_id="vm-2", name="c")

    async def ids(query: str) -> set[str]:
        return {p["id"] for p in await listed(site, h, f"ports?{query}", "ports")}

    assert await ids(f"network_id={b['id']}") == {pb["id"], pc["id"]}
    assert await ids("device_id=vm-1") == {pa["id"], pb["id"]}
    assert await ids(f"device_id=vm-1&network_id={b['id']}") == {pb["id"]}
    assert await ids("device_id=vm-1&device_id=vm-2") == {pa["id"], pb["id"], pc["id"]}
    assert await ids("admin_state_up=false") == {pb["id"]}
    assert await ids("device_owner=compute:nova") == {pa["id"]}
    assert await ids(f"mac_address={pc['mac_address']}") == {pc["id"]}
    # A list attribute matches when any of its items does.
    assert await ids(f"security_groups={pa['security_groups'][0]}") == {
        pa["id"],
        pb["id"],
        pc["id"],
    }
    found = await listed(site, h, "ports?name=c&fields=id&fields=fixed_ips", "ports")
    assert found == [{"id": pc["id"], "fixed_ips": pc["fixed_ips"]}]


async def test_racing_requests_for_one_address_get_it_once(site) -> None:
    h = as_(site)
    net, sub = await _lan(site)
    asked = [{"ip_address": "10.1.0.7"}]
    answers = await asyncio.gather(
        *(post(site, h, "ports", "port", network_id=net["id"], fixed_ips=asked) for _ in range(4))
    )
    assert sorted(r.status_code for r in answers) == [201, 409, 409, 409]
    for r in answers:
        if r.status_code == 409:
            fault(r, 409, "IpAddressAlreadyAllocated")
    (holder,) = await listed(site, h, "ports", "ports")
    assert holder["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.1.0.7"}]


async def test_racing_ports_fill_a_subnet_without_sharing_an_address(site) -> None:
    h = as_(site)
    net, _ = await _lan(site, "10.3.0.0/29")  # five addresses: .2 to .6
    answers = await asyncio.gather(
        *(post(site, h, "ports", "port", network_id=net["id"]) for _ in range(7))
    )
    made = [r.json()["port"] for r in answers if r.status_code == 201]
    assert sorted(addresses(p)[0] for p in made) == [f"10.3.0.{n}" for n in range(2, 7)]
    refusals = [r for r in answers if r.status_code != 201]
    assert len(refusals) == 2
    for r in refusals:
        fault(r, 409, "IpAddressGenerationFailure", "No more IP addresses available")


async def test_an_update_of_what_a_port_cannot_change_is_refused_not_ignored(site) -> None:
    h = as_(site)
    net, sub = await _lan(site)
    made = await port(site, h, net["id"])
    other = await network(site, h, "other")
    read_only = {"network_id": other["id"], "project_id": "p", "status": "UP"}
    unsupported = {
        "fixed_ips": [{"subnet_id": sub["id"], "ip_address": "10.1.0.9"}],
        "mac_address": "fa:16:3e:00:00:99",
    }
    cases = fixed_attributes(read_only, unsupported)
    await refused_updates(site, h, f"ports/{made['id']}", "port", cases)
