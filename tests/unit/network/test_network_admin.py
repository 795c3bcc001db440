"""What an admin does across projects in the network service: sees every project's
resources (and narrows with ``project_id``), acts on them, and makes resources for a
project that are that project's in every respect, its default security group included."""

from __future__ import annotations

from tests.unit.network.neutron_kit import (
    admin,
    as_,
    default_group,
    delete,
    fault,
    get,
    listed,
    names,
    network,
    port,
    post,
    project_id,
    put,
    subnet,
)

BETA = project_id("beta")


async def test_an_admin_lists_every_projects_networks_and_narrows_by_project(site) -> None:
    await network(site, as_(site), "alpha-net")
    await network(site, as_(site, project="beta"), "beta-net")
    await network(site, admin(site), "admin-net")
    assert names(await listed(site, admin(site), "networks", "networks")) == [
        "admin-net",
        "alpha-net",
        "beta-net",
    ]
    for key in ("project_id", "tenant_id"):
        found = await listed(site, admin(site), f"networks?{key}={BETA}", "networks")
        assert names(found) == ["beta-net"], key
    # A project's member listing with another project's id sees nothing of it.
    assert await listed(site, as_(site), f"networks?project_id={BETA}", "networks") == []


async def test_an_admin_acts_on_another_projects_resources(site) -> None:
    beta = as_(site, project="beta")
    net = await network(site, beta, "theirs")
    sub = await subnet(site, beta, net["id"])
    made = await port(site, beta, net["id"])
    r = await put(site, admin(site), f"ports/{made['id']}", "port", name="renamed-by-admin")
    assert r.status_code == 200 and r.json()["port"]["name"] == "renamed-by-admin"
    assert (await get(site, beta, f"ports/{made['id']}")).json()["port"]["name"] == (
        "renamed-by-admin"
    )
    r = await put(site, admin(site), f"subnets/{sub['id']}", "subnet", enable_dhcp=False)
    assert r.json()["subnet"]["enable_dhcp"] is False
    assert (await delete(site, admin(site), f"networks/{net['id']}")).status_code == 204
    assert await listed(site, beta, "networks", "networks") == []
    assert await listed(site, beta, "ports", "ports") == []


async def test_a_port_an_admin_makes_for_a_project_is_in_that_projects_default_group(
    site,
) -> None:
    beta = as_(site, project="beta")
    net = await network(site, beta, "theirs")
    await subnet(site, beta, net["id"])
    made = await port(site, admin(site), net["id"], project_id=BETA)
    theirs = await default_group(site, beta)
    assert made["project_id"] == BETA and made["security_groups"] == [theirs["id"]]
    # Beta sees the port as its own; the admin's own default group is not involved.
    assert [p["id"] for p in await listed(site, beta, "ports", "ports")] == [made["id"]]
    (own,) = await listed(
        site,
        admin(site),
        f"security-groups?name=default&project_id={project_id('admin')}",
        "security_groups",
    )
    assert own["id"] != theirs["id"]


async def test_an_admin_cannot_put_a_projects_port_in_another_projects_group(site) -> None:
    beta = as_(site, project="beta")
    net = await network(site, beta, "theirs")
    alpha_group = await default_group(site, as_(site))
    fault(
        await post(
            site,
            admin(site),
            "ports",
            "port",
            network_id=net["id"],
            project_id=BETA,
            security_groups=[alpha_group["id"]],
        ),
        404,
        "SecurityGroupNotFound",
        f"Security group {alpha_group['id']} does not exist",
    )
    assert await listed(site, beta, "ports", "ports") == []


async def test_an_admin_sees_each_projects_default_group(site) -> None:
    await default_group(site, as_(site))
    await default_group(site, as_(site, project="beta"))
    found = await listed(site, admin(site), "security-groups?name=default", "security_groups")
    projects = {g["project_id"] for g in found}
    assert {project_id("alpha"), BETA, project_id("admin")} <= projects
    assert len(found) == len(projects)  # one each
