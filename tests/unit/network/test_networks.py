"""Networks through the Neutron API: what a new one looks like, what it refuses and in
which words, who sees it, how an update and a delete behave."""

from __future__ import annotations

from tests.unit.network.neutron_kit import (
    N,
    admin,
    as_,
    delete,
    fault,
    fixed_attributes,
    get,
    listed,
    names,
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
from edgefed.testkit.tokens import forge_token

# -- create -------------------------------------------------------------------------------


async def test_a_new_network_has_neutrons_defaults_and_belongs_to_the_caller(site) -> None:
    net = await network(site, as_(site), "blue", description="the blue one")
    assert net["name"] == "blue" and net["description"] == "the blue one"
    assert net["project_id"] == net["tenant_id"] == project_id("alpha")
    assert (net["admin_state_up"], net["shared"], net["router:external"]) == (True, False, False)
    assert (net["mtu"], net["status"], net["subnets"]) == (1500, "ACTIVE", [])
    assert net["revision_number"] == 0 and net["tags"] == []
    # Neutron's timestamps: seconds, UTC, with a Z.
    assert net["created_at"].endswith("Z") and len(net["created_at"]) == 20
    assert net["created_at"] == net["updated_at"]
    r = await get(site, as_(site), f"networks/{net['id']}")
    assert r.status_code == 200 and r.json()["network"] == net


async def test_the_mtu_may_be_anything_from_68_to_9000(site) -> None:
    for mtu in (68, 9000):
        assert (await network(site, as_(site), f"mtu-{mtu}", mtu=mtu))["mtu"] == mtu


async def test_an_mtu_outside_68_to_9000_or_not_a_number_is_refused(site) -> None:
    h = as_(site)
    for mtu in (67, 9001, "1500", True, 1500.5):
        fault(
            await post(site, h, "networks", "network", name="n", mtu=mtu),
            400,
            "InvalidInput",
            f"'{mtu}' is not a valid MTU (68-9000) (field 'mtu')",
        )
    assert await listed(site, h, "networks", "networks") == []


async def test_attributes_of_the_wrong_type_are_refused_naming_the_field(site) -> None:
    h = as_(site)
    fault(
        await post(site, h, "networks", "network", name="n", admin_state_up="yes"),
        400,
        "InvalidInput",
        "Invalid input for operation: 'yes' cannot be converted to boolean "
        "(field 'admin_state_up')",
    )
    fault(
        await post(site, h, "networks", "network", name="a\x00b"),
        400,
        "InvalidInput",
        "is not a valid string of at most 255 characters (field 'name')",
    )
    fault(
        await post(site, h, "networks", "network", name="n", description="d" * 256),
        400,
        "InvalidInput",
        "(field 'description')",
    )
    fault(await post(site, h, "networks", "network", name=7), 400, "InvalidInput", "'7'")
    assert await listed(site, h, "networks", "networks") == []


async def test_a_body_that_is_not_a_network_is_refused_in_neutrons_words(site) -> None:
    h = as_(site)
    r = await site.client.post(f"{N}/networks", content=b"{not json", headers=h)
    fault(r, 400, "BadRequest", "Invalid input for operation: the body is not valid JSON.")
    for body in ({}, {"subnet": {"name": "n"}}, {"network": "n"}, []):
        r = await site.client.post(f"{N}/networks", json=body, headers=h)
        assert r.status_code == 400, (body, r.text)
        assert "Resource body required: expected a JSON object under 'network'." in r.text
    assert await listed(site, h, "networks", "networks") == []


async def test_a_name_of_255_characters_is_kept_whole(site) -> None:
    net = await network(site, as_(site), "x" * 255)
    assert net["name"] == "x" * 255


async def test_only_an_admin_creates_for_another_project(site) -> None:
    fault(
        await post(site, as_(site), "networks", "network", name="n", project_id="beta-id"),
        403,
        "PolicyNotAuthorized",
        "only an admin can create a resource for another project",
    )
    theirs = await network(site, admin(site), "theirs", project_id=project_id("beta"))
    assert theirs["project_id"] == project_id("beta")
    # tenant_id, the older name, works too.
    older = await network(site, admin(site), "older", tenant_id=project_id("beta"))
    assert older["tenant_id"] == older["project_id"] == project_id("beta")
    assert names(await listed(site, as_(site, project="beta"), "networks", "networks")) == [
        "older",
        "theirs",
    ]
    assert await listed(site, as_(site), "networks", "networks") == []


async def test_naming_ones_own_project_is_no_privilege(site) -> None:
    net = await network(site, as_(site), project_id=project_id("alpha"))
    assert net["project_id"] == project_id("alpha")


# -- who sees what --------------------------------------------------------------------------


async def test_another_projects_network_does_not_exist_for_the_caller(site) -> None:
    ours = await network(site, as_(site), "ours")
    beta = as_(site, project="beta")
    assert await listed(site, beta, "networks", "networks") == []
    message = f"Network {ours['id']} could not be found."
    fault(await get(site, beta, f"networks/{ours['id']}"), 404, "NetworkNotFound", message)
    fault(
        await put(site, beta, f"networks/{ours['id']}", "network", name="mine"),
        404,
        "NetworkNotFound",
        message,
    )
    fault(await delete(site, beta, f"networks/{ours['id']}"), 404, "NetworkNotFound", message)
    # An admin sees everything.
    r = await get(site, admin(site), f"networks/{ours['id']}")
    assert r.json()["network"]["name"] == "ours"
    assert names(await listed(site, admin(site), "networks", "networks")) == ["ours"]


async def test_a_shared_network_is_seen_by_everyone_and_changed_by_its_owner(site) -> None:
    owner = as_(site)
    shared = await network(site, admin(site), "public", shared=True, project_id=project_id("alpha"))
    private = await network(site, owner, "private")
    beta = as_(site, project="beta")
    assert names(await listed(site, beta, "networks", "networks")) == ["public"]
    assert (await get(site, beta, f"networks/{shared['id']}")).json()["network"]["shared"] is True
    fault(await get(site, beta, f"networks/{private['id']}"), 404, "NetworkNotFound")
    policy_refused(
        await put(site, beta, f"networks/{shared['id']}", "network", name="x"), "update_network"
    )
    policy_refused(await delete(site, beta, f"networks/{shared['id']}"), "delete_network")
    r = await put(site, owner, f"networks/{shared['id']}", "network", name="still-public")
    assert r.status_code == 200 and r.json()["network"]["name"] == "still-public"


async def test_a_caller_without_a_project_sees_and_makes_no_network(site) -> None:
    ours = await network(site, as_(site), "ours")
    ctx = site.app.state.ctx
    unscoped = {"X-Auth-Token": forge_token(ctx, user="u", project=None, role="member")}
    assert await listed(site, unscoped, "networks", "networks") == []
    fault(await get(site, unscoped, f"networks/{ours['id']}"), 404, "NetworkNotFound")
    fault(
        await post(site, unscoped, "networks", "network", name="x"),
        400,
        "BadRequest",
        "A project-scoped token (or project_id) is needed.",
    )


# -- update ---------------------------------------------------------------------------------


async def test_an_update_sets_what_the_body_names_and_leaves_the_rest(site) -> None:
    h = as_(site)
    net = await network(site, h, "n", description="first", mtu=1400)
    r = await put(site, h, f"networks/{net['id']}", "network", description="second")
    assert r.status_code == 200, r.text
    updated = r.json()["network"]
    assert (updated["name"], updated["description"], updated["mtu"]) == ("n", "second", 1400)
    r = await put(site, h, f"networks/{net['id']}", "network", admin_state_up=False)
    assert r.json()["network"]["admin_state_up"] is False
    shown = (await get(site, h, f"networks/{net['id']}")).json()["network"]
    assert (shown["description"], shown["admin_state_up"]) == ("second", False)


async def test_an_empty_update_answers_the_network_unchanged(site) -> None:
    h = as_(site)
    net = await network(site, h, "n")
    r = await put(site, h, f"networks/{net['id']}", "network")
    assert r.status_code == 200 and r.json()["network"] == net


async def test_a_refused_update_changes_nothing(site) -> None:
    h = as_(site)
    net = await network(site, h, "n")
    await refused_updates(
        site,
        h,
        f"networks/{net['id']}",
        "network",
        [
            (
                {"name": "m", "admin_state_up": "no"},
                400,
                "InvalidInput",
                "(field 'admin_state_up')",
            ),
            ({"name": "m\x00"}, 400, "InvalidInput", "(field 'name')"),
            ({"name": "m", "mtu": 9001}, 400, "InvalidInput", "(field 'mtu')"),
        ],
    )


async def test_networks_are_updated_with_put_not_patch(site) -> None:
    h = as_(site)
    net = await network(site, h, "n")
    r = await site.client.patch(f"{N}/networks/{net['id']}", json={"network": {}}, headers=h)
    assert r.status_code == 405


async def test_an_update_of_a_network_that_does_not_exist_is_404(site) -> None:
    missing = "0" * 8 + "-0000-0000-0000-" + "0" * 12
    fault(
        await put(site, as_(site), f"networks/{missing}", "network", name="x"),
        404,
        "NetworkNotFound",
        f"Network {missing} could not be found.",
    )


# -- delete ---------------------------------------------------------------------------------


async def test_deleting_a_network_takes_its_subnets_and_free_ports(site) -> None:
    h = as_(site)
    net = await network(site, h, "n")
    sub = await subnet(site, h, net["id"])
    loose = await port(site, h, net["id"])
    assert (await delete(site, h, f"networks/{net['id']}")).status_code == 204
    fault(await get(site, h, f"networks/{net['id']}"), 404, "NetworkNotFound")
    fault(await get(site, h, f"subnets/{sub['id']}"), 404, "SubnetNotFound")
    fault(await get(site, h, f"ports/{loose['id']}"), 404, "PortNotFound")
    assert await listed(site, h, "ports", "ports") == []
    # Its addresses are free again: the same CIDR goes on a new network.
    again = await network(site, h, "again")
    await subnet(site, h, again["id"])
    assert (await port(site, h, again["id"]))["fixed_ips"][0]["ip_address"] == "10.1.0.2"


async def test_a_network_with_a_port_in_use_stays_whole(site) -> None:
    h = as_(site)
    net = await network(site, h, "n")
    sub = await subnet(site, h, net["id"])
    used = await port(site, h, net["id"], device_id="vm-1", device_owner="compute:nova")
    fault(
        await delete(site, h, f"networks/{net['id']}"),
        409,
        "NetworkInUse",
        f"Unable to complete operation on network {net['id']}. "
        "There are one or more ports still in use on the network.",
    )
    assert (await get(site, h, f"networks/{net['id']}")).json()["network"]["subnets"] == [sub["id"]]
    assert (await get(site, h, f"ports/{used['id']}")).status_code == 200
    # Once the port goes, so may the network.
    assert (await delete(site, h, f"ports/{used['id']}")).status_code == 204
    assert (await delete(site, h, f"networks/{net['id']}")).status_code == 204


async def test_a_network_is_deleted_once(site) -> None:
    h = as_(site)
    net = await network(site, h, "n")
    assert (await delete(site, h, f"networks/{net['id']}")).status_code == 204
    fault(await delete(site, h, f"networks/{net['id']}"), 404, "NetworkNotFound")


async def test_a_network_lists_its_subnets_in_the_order_they_were_made(site) -> None:
    h = as_(site)
    net = await network(site, h, "n")
    made = [
        (await subnet(site, h, net["id"], cidr))["id"]
        for cidr in ("10.3.0.0/24", "10.1.0.0/24", "10.2.0.0/24")
    ]
    assert (await get(site, h, f"networks/{net['id']}")).json()["network"]["subnets"] == made
    (listed_net,) = await listed(site, h, "networks", "networks")
    assert listed_net["subnets"] == made


# -- lists: filters and fields -----------------------------------------------------------


async def _three(site: InProcessSite) -> None:
    h = as_(site)
    await network(site, h, "red", admin_state_up=False)
    await network(site, h, "green", mtu=1400)
    await network(
        site, admin(site), "ext", project_id=project_id("alpha"), **{"router:external": True}
    )


async def test_lists_filter_on_any_attribute(site) -> None:
    await _three(site)
    h = as_(site)
    assert names(await listed(site, h, "networks?name=red", "networks")) == ["red"]
    assert names(await listed(site, h, "networks?name=red&name=green", "networks")) == [
        "green",
        "red",
    ]
    assert names(await listed(site, h, "networks?mtu=1400", "networks")) == ["green"]
    assert names(await listed(site, h, "networks?router:external=true", "networks")) == ["ext"]
    # Booleans as Neutron reads them: any case.
    assert names(await listed(site, h, "networks?admin_state_up=False", "networks")) == ["red"]
    assert names(await listed(site, h, "networks?admin_state_up=TRUE", "networks")) == [
        "ext",
        "green",
    ]
    # 1 and 0 as Neutron's boolean converter reads them; other words match nothing.
    assert names(await listed(site, h, "networks?admin_state_up=0", "networks")) == ["red"]
    assert names(await listed(site, h, "networks?router:external=1", "networks")) == ["ext"]
    assert await listed(site, h, "networks?admin_state_up=no", "networks") == []
    assert await listed(site, h, "networks?name=blue", "networks") == []
    assert names(
        await listed(site, h, f"networks?project_id={project_id('alpha')}", "networks")
    ) == [
        "ext",
        "green",
        "red",
    ]


async def test_a_filter_on_no_attribute_of_a_network_is_ignored(site) -> None:
    await _three(site)
    h = as_(site)
    assert len(await listed(site, h, "networks?colour=blue", "networks")) == 3
    # Paging and sorting parameters are not filters either.
    assert len(await listed(site, h, "networks?limit=1&sort_key=name", "networks")) == 3


async def test_fields_choose_the_attributes_shown(site) -> None:
    await _three(site)
    h = as_(site)
    found = await listed(site, h, "networks?fields=name&fields=mtu&name=green", "networks")
    assert found == [{"name": "green", "mtu": 1400}]
    # An attribute networks do not have is left out, not an error.
    found = await listed(site, h, "networks?fields=id&fields=colour&name=green", "networks")
    assert list(found[0]) == ["id"]
    (net,) = await listed(site, h, "networks?name=red", "networks")
    r = await get(site, h, f"networks/{net['id']}?fields=name&fields=admin_state_up")
    assert r.json() == {"network": {"name": "red", "admin_state_up": False}}


async def test_a_reader_lists_and_shows_the_projects_networks(site) -> None:
    await _three(site)
    reader = as_(site, "reader")
    assert names(await listed(site, reader, "networks", "networks")) == ["ext", "green", "red"]


async def test_the_mtu_is_changed_within_its_bounds(site) -> None:
    h = as_(site)
    net = await network(site, h, "n")
    r = await put(site, h, f"networks/{net['id']}", "network", mtu=9000)
    assert r.status_code == 200 and r.json()["network"]["mtu"] == 9000
    fault(
        await put(site, h, f"networks/{net['id']}", "network", mtu=9001),
        400,
        "InvalidInput",
        "'9001' is not a valid MTU (68-9000) (field 'mtu')",
    )
    assert (await get(site, h, f"networks/{net['id']}")).json()["network"]["mtu"] == 9000


async def test_an_update_naming_a_read_only_attribute_changes_nothing(site) -> None:
    h = as_(site)
    net = await network(site, h, "n")
    read_only = {
        "project_id": project_id("beta"),
        "tenant_id": project_id("beta"),
        "status": "DOWN",
        "subnets": [],
        "id": "new-id",
    }
    cases = fixed_attributes(read_only)
    await refused_updates(site, h, f"networks/{net['id']}", "network", cases)
