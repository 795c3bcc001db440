"""Security groups and rules through the Neutron API: what Neutron accepts, what it
refuses and in which words, its defaults, quotas and policy; ports carrying groups."""

from __future__ import annotations

from typing import Any

from tests.unit.network.neutron_kit import (
    N,
    as_,
    default_group,
    fault,
    group,
    post,
    rule,
)

from edgefed.testkit.inprocess import InProcessSite


def shape(rule: dict[str, Any]) -> tuple[Any, ...]:
    return (rule["direction"], rule["ethertype"], rule["protocol"], rule["remote_group_id"])


# -- groups ------------------------------------------------------------------------------


async def test_the_default_group_lets_members_in_and_everything_out(site) -> None:
    h = as_(site)
    default = await default_group(site, h)
    assert default["stateful"] is True and default["project_id"] == default["tenant_id"]
    assert sorted(shape(r) for r in default["security_group_rules"]) == [
        ("egress", "IPv4", None, None),
        ("egress", "IPv6", None, None),
        ("ingress", "IPv4", None, default["id"]),
        ("ingress", "IPv6", None, default["id"]),
    ]
    # Listing rules is how a new project sees them first, too.
    r = await site.client.get(f"{N}/security-group-rules", headers=as_(site, project="beta"))
    assert len(r.json()["security_group_rules"]) == 4


async def test_a_new_group_sends_anything_and_takes_nothing_in(site) -> None:
    h = as_(site)
    web = await group(site, h)
    assert sorted(shape(r) for r in web["security_group_rules"]) == [
        ("egress", "IPv4", None, None),
        ("egress", "IPv6", None, None),
    ]
    r = await site.client.get(f"{N}/security-groups/{web['id']}", headers=h)
    assert r.json()["security_group"]["name"] == "web"
    r = await site.client.put(
        f"{N}/security-groups/{web['id']}",
        json={"security_group": {"name": "www", "description": "front"}},
        headers=h,
    )
    assert (r.json()["security_group"]["name"], r.json()["security_group"]["description"]) == (
        "www",
        "front",
    )
    names = {
        g["name"]
        for g in (await site.client.get(f"{N}/security-groups", headers=h)).json()[
            "security_groups"
        ]
    }
    assert names == {"default", "www"}
    assert (
        await site.client.delete(f"{N}/security-groups/{web['id']}", headers=h)
    ).status_code == 204
    fault(
        await site.client.get(f"{N}/security-groups/{web['id']}", headers=h),
        404,
        "SecurityGroupNotFound",
        f"Security group {web['id']} does not exist",
    )


async def test_the_default_group_keeps_its_name_and_only_an_admin_removes_it(site) -> None:
    h = as_(site)
    default = await default_group(site, h)
    for name in ("default", "Default"):
        fault(
            await post(site, h, "security-groups", "security_group", name=name),
            409,
            "SecurityGroupDefaultAlreadyExists",
            "Default security group already exists.",
        )
    r = await site.client.put(
        f"{N}/security-groups/{default['id']}", json={"security_group": {"name": "x"}}, headers=h
    )
    fault(
        r, 409, "SecurityGroupCannotUpdateDefault", "Updating default security group not allowed."
    )
    web = await group(site, h)
    r = await site.client.put(
        f"{N}/security-groups/{web['id']}", json={"security_group": {"name": "default"}}, headers=h
    )
    fault(r, 409, "SecurityGroupDefaultAlreadyExists")
    fault(
        await site.client.delete(f"{N}/security-groups/{default['id']}", headers=h),
        409,
        "SecurityGroupCannotRemoveDefault",
        "Insufficient rights for removing default security group.",
    )
    admin = as_(site, "admin", "admin")
    assert (
        await site.client.delete(f"{N}/security-groups/{default['id']}", headers=admin)
    ).status_code == 204


async def test_groups_refuse_what_they_do_not_offer(site) -> None:
    h = as_(site)
    fault(
        await post(site, h, "security-groups", "security_group", name="x", stateful=False),
        400,
        "InvalidInput",
        "stateless security groups are not supported",
    )
    fault(
        await post(site, h, "security-groups", "security_group", name="x", colour="red"),
        400,
        "HTTPBadRequest",
        "Unrecognized attribute(s) 'colour'",
    )


async def test_a_group_a_port_is_in_is_not_deleted(site) -> None:
    h = as_(site)
    web = await group(site, h)
    port = await _port(site, h, security_groups=[web["id"]])
    fault(
        await site.client.delete(f"{N}/security-groups/{web['id']}", headers=h),
        409,
        "SecurityGroupInUse",
        f"Security Group {web['id']} in use.",
    )
    await site.client.delete(f"{N}/ports/{port['id']}", headers=h)
    assert (
        await site.client.delete(f"{N}/security-groups/{web['id']}", headers=h)
    ).status_code == 204


async def test_deleting_a_group_takes_the_rules_that_name_it(site) -> None:
    h = as_(site)
    web, db = await group(site, h, "web"), await group(site, h, "db")
    made = (await rule(site, h, db["id"], direction="ingress", remote_group_id=web["id"])).json()
    await site.client.delete(f"{N}/security-groups/{web['id']}", headers=h)
    r = await site.client.get(
        f"{N}/security-group-rules/{made['security_group_rule']['id']}", headers=h
    )
    assert r.status_code == 404


# -- rules -------------------------------------------------------------------------------


async def test_a_rule_is_made_shown_listed_by_group_and_deleted(site) -> None:
    h = as_(site)
    web = await group(site, h)
    r = await rule(
        site,
        h,
        web["id"],
        direction="ingress",
        protocol="tcp",
        port_range_min=22,
        port_range_max=22,
        remote_ip_prefix="0.0.0.0/0",
    )
    assert r.status_code == 201, r.text
    made = r.json()["security_group_rule"]
    expected = {
        "direction": "ingress",
        "ethertype": "IPv4",
        "protocol": "tcp",
        "port_range_min": 22,
        "port_range_max": 22,
        "remote_ip_prefix": "0.0.0.0/0",
        "remote_group_id": None,
        "project_id": web["project_id"],
        "security_group_id": web["id"],
    }
    assert {k: made[k] for k in expected} == expected
    shown = await site.client.get(f"{N}/security-group-rules/{made['id']}", headers=h)
    assert shown.json()["security_group_rule"] == made
    listed = await site.client.get(
        f"{N}/security-group-rules?security_group_id={web['id']}", headers=h
    )
    assert [x["id"] for x in listed.json()["security_group_rules"]].count(made["id"]) == 1
    assert len(listed.json()["security_group_rules"]) == 3
    in_group = (await site.client.get(f"{N}/security-groups/{web['id']}", headers=h)).json()
    assert made["id"] in {x["id"] for x in in_group["security_group"]["security_group_rules"]}
    assert (
        await site.client.delete(f"{N}/security-group-rules/{made['id']}", headers=h)
    ).status_code == 204
    fault(
        await site.client.get(f"{N}/security-group-rules/{made['id']}", headers=h),
        404,
        "SecurityGroupRuleNotFound",
        f"Security group rule {made['id']} does not exist",
    )


async def test_the_same_rule_twice_is_a_conflict_naming_the_first(site) -> None:
    h = as_(site)
    web = await group(site, h)
    r = await rule(
        site,
        h,
        web["id"],
        direction="ingress",
        protocol="tcp",
        port_range_min=80,
        port_range_max=80,
    )
    first = r.json()["security_group_rule"]
    message = f"Security group rule already exists. Rule id is {first['id']}."
    # The same rule whatever the protocol's spelling or an explicit "anywhere".
    for again in (
        {"protocol": "tcp"},
        {"protocol": "6"},
        {"protocol": 6, "remote_ip_prefix": "0.0.0.0/0"},
        {"protocol": "TCP", "ethertype": "ipv4"},
    ):
        r = await rule(
            site, h, web["id"], direction="ingress", port_range_min=80, port_range_max=80, **again
        )
        fault(r, 409, "SecurityGroupRuleExists", message)
    # Neutron's default egress rules are there already.
    fault(await rule(site, h, web["id"], direction="egress"), 409, "SecurityGroupRuleExists")
    other = await rule(
        site,
        h,
        web["id"],
        direction="ingress",
        protocol="udp",
        port_range_min=80,
        port_range_max=80,
    )
    assert other.status_code == 201


async def test_values_are_stored_as_neutron_normalises_them(site) -> None:
    h = as_(site)
    web = await group(site, h)
    made = (
        await rule(site, h, web["id"], direction="ingress", remote_ip_prefix="192.0.2.7")
    ).json()["security_group_rule"]
    assert (made["remote_ip_prefix"], made["normalized_cidr"]) == ("192.0.2.7/32", "192.0.2.7/32")
    made = (
        await rule(site, h, web["id"], direction="ingress", remote_ip_prefix="10.1.2.3/8")
    ).json()["security_group_rule"]
    assert (made["remote_ip_prefix"], made["normalized_cidr"]) == ("10.1.2.3/8", "10.0.0.0/8")
    made = (
        await rule(site, h, web["id"], direction="ingress", ethertype="IPv6", protocol="icmp")
    ).json()["security_group_rule"]
    assert made["protocol"] == "ipv6-icmp"
    made = (
        await rule(
            site, h, web["id"], direction="ingress", protocol="any", remote_ip_prefix="10.9.0.0/16"
        )
    ).json()["security_group_rule"]
    assert made["protocol"] is None
    r = await rule(
        site, h, web["id"], direction="ingress", protocol="icmp", port_range_min=8, port_range_max=0
    )
    made = r.json()["security_group_rule"]
    assert (made["port_range_min"], made["port_range_max"]) == (8, 0)


BAD_RULES = [
    ({}, 400, "HTTPBadRequest", "Required attribute 'direction' not specified"),
    ({"direction": "sideways"}, 400, "HTTPBadRequest",
     "Invalid input for direction. Reason: 'sideways' is not in ['ingress', 'egress']."),
    ({"direction": "ingress", "ethertype": "IPv5"}, 400, "HTTPBadRequest",
     "Invalid input for ethertype."),
    ({"direction": "ingress", "protocol": "bogus"}, 400, "SecurityGroupRuleInvalidProtocol",
     "Security group rule protocol bogus not supported."),
    ({"direction": "ingress", "protocol": 256}, 400, "SecurityGroupRuleInvalidProtocol",
     "and their integer representation (0 to 255) are supported."),
    ({"direction": "ingress", "protocol": "tcp", "port_range_min": 70000,
      "port_range_max": 70000}, 400, "SecurityGroupInvalidPortValue",
     "Invalid value for port 70000"),
    ({"direction": "ingress", "port_range_min": 22, "port_range_max": 22}, 400,
     "SecurityGroupProtocolRequiredWithPorts",
     "Must also specify protocol if port range is given."),
    ({"direction": "ingress", "protocol": "tcp", "port_range_min": 90, "port_range_max": 80},
     400, "SecurityGroupInvalidPortRange",
     "For TCP/UDP protocols, port_range_min must be <= port_range_max"),
    ({"direction": "ingress", "protocol": "tcp", "port_range_min": 22}, 400,
     "SecurityGroupInvalidPortRange", "port_range_min must be <= port_range_max"),
    ({"direction": "ingress", "protocol": "udp", "port_range_min": 0, "port_range_max": 10},
     400, "SecurityGroupInvalidPortValue", "Invalid value for port 0"),
    ({"direction": "ingress", "protocol": "gre", "port_range_min": 1, "port_range_max": 2}, 400,
     "SecurityGroupInvalidProtocolForPort",
     "Invalid protocol 47 for port range, only supported for DCCP, SCTP, TCP, UDP, UDPLITE "
     "protocols."),
    ({"direction": "ingress", "protocol": "icmp", "port_range_min": 256}, 400,
     "SecurityGroupInvalidIcmpValue",
     "Invalid value for ICMP type (port_range_min) 256. It must be 0 to 255."),
    ({"direction": "ingress", "protocol": "icmp", "port_range_max": 3}, 400,
     "SecurityGroupMissingIcmpType",
     "ICMP code (port-range-max) 3 is provided but ICMP type (port-range-min) is missing."),
    ({"direction": "ingress", "remote_ip_prefix": "10.0.0.300/8"}, 400, "InvalidCIDR",
     "Invalid CIDR 10.0.0.300/8 given as IP prefix."),
    ({"direction": "ingress", "remote_ip_prefix": "2001:db8::/32"}, 400,
     "SecurityGroupRuleParameterConflict",
     "Conflicting value ethertype IPv4 for CIDR 2001:db8::/32"),
    ({"direction": "ingress", "protocol": "ipv6-icmp"}, 400,
     "SecurityGroupEthertypeConflictWithProtocol",
     "Invalid ethertype IPv4 for protocol ipv6-icmp."),
    ({"direction": "ingress", "remote_ip_prefix": "10.0.0.0/8", "remote_group_id": "SELF"}, 400,
     "SecurityGroupRemoteGroupAndRemoteIpPrefix",
     "Only remote_ip_prefix or remote_group_id may be provided."),
    ({"direction": "ingress", "remote_group_id": "no-such-group"}, 404, "SecurityGroupNotFound",
     "Security group no-such-group does not exist"),
    ({"direction": "ingress", "port": 22}, 400, "HTTPBadRequest",
     "Unrecognized attribute(s) 'port'"),
]  # fmt: skip


async def test_rules_are_refused_in_neutrons_words_and_leave_no_rule(site) -> None:
    h = as_(site)
    web = await group(site, h)
    for body, status, kind, message in BAD_RULES:
        asked = {k: (web["id"] if v == "SELF" else v) for k, v in body.items()}
        fault(await rule(site, h, web["id"], **asked), status, kind, message)
    listed = await site.client.get(
        f"{N}/security-group-rules?security_group_id={web['id']}", headers=h
    )
    assert sorted(shape(made) for made in listed.json()["security_group_rules"]) == [
        ("egress", "IPv4", None, None),
        ("egress", "IPv6", None, None),
    ]


async def test_a_rule_needs_a_group_the_caller_may_change(site) -> None:
    h = as_(site)
    fault(
        await rule(site, h, "no-such-group", direction="ingress"),
        404,
        "SecurityGroupNotFound",
        "Security group no-such-group does not exist",
    )
    fault(
        await post(site, h, "security-group-rules", "security_group_rule", direction="ingress"),
        400,
        "HTTPBadRequest",
        "Required attribute 'security_group_id' not specified",
    )
    web = await group(site, h)
    # Another project does not see the group; a reader of this one sees but cannot add.
    fault(
        await rule(site, as_(site, project="beta"), web["id"], direction="ingress"),
        404,
        "SecurityGroupNotFound",
    )
    r = await rule(site, as_(site, "reader"), web["id"], direction="ingress")
    fault(r, 403, "PolicyNotAuthorized", "rule:create_security_group_rule is disallowed by policy")
    # Nor may a remote group be another project's.
    theirs = await group(site, as_(site, project="beta"), "theirs")
    fault(
        await rule(site, h, web["id"], direction="ingress", remote_group_id=theirs["id"]),
        404,
        "SecurityGroupNotFound",
    )
    r = await rule(
        site, h, web["id"], direction="ingress", protocol="tcp", port_range_min=1, port_range_max=9
    )
    made = r.json()["security_group_rule"]
    r = await site.client.delete(
        f"{N}/security-group-rules/{made['id']}", headers=as_(site, "reader")
    )
    fault(r, 403, "PolicyNotAuthorized", "rule:delete_security_group_rule")
    r = await site.client.get(
        f"{N}/security-group-rules/{made['id']}", headers=as_(site, project="beta")
    )
    assert r.status_code == 404
    fault(
        await post(site, as_(site, "reader"), "security-groups", "security_group", name="x"),
        403,
        "PolicyNotAuthorized",
        "rule:create_security_group is disallowed",
    )


async def test_quotas_count_groups_and_rules(site) -> None:
    h, admin = as_(site), as_(site, "admin", "admin")
    project = (await default_group(site, h))["project_id"]  # 1 group, 4 rules
    r = await site.client.put(
        f"{N}/quotas/{project}",
        json={"quota": {"security_group": 2, "security_group_rule": 7}},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    web = await group(site, h)  # 2 groups, 6 rules
    fault(
        await post(site, h, "security-groups", "security_group", name="more"),
        409,
        "OverQuota",
        "Quota exceeded for resources: ['security_group'].",
    )
    assert (
        await rule(
            site,
            h,
            web["id"],
            direction="ingress",
            protocol="tcp",
            port_range_min=22,
            port_range_max=22,
        )
    ).status_code == 201
    fault(
        await rule(
            site,
            h,
            web["id"],
            direction="ingress",
            protocol="tcp",
            port_range_min=23,
            port_range_max=23,
        ),
        409,
        "OverQuota",
        "Quota exceeded for resources: ['security_group_rule'].",
    )
    used = (await site.client.get(f"{N}/quotas/{project}/details", headers=h)).json()["quota"]
    assert (used["security_group"]["used"], used["security_group_rule"]["used"]) == (2, 7)
    # A group needs room for its two rules.
    quota = {"quota": {"security_group": 5}}
    await site.client.put(f"{N}/quotas/{project}", json=quota, headers=admin)
    fault(
        await post(site, h, "security-groups", "security_group", name="more"),
        409,
        "OverQuota",
        "['security_group_rule']",
    )


# -- ports -------------------------------------------------------------------------------


async def _port(site: InProcessSite, h: dict[str, str], **body: Any) -> dict[str, Any]:
    r = await post(site, h, "networks", "network", name="n")
    net = r.json()["network"]
    r = await post(
        site, h, "subnets", "subnet", network_id=net["id"], cidr="10.4.0.0/24", ip_version=4
    )
    r = await post(site, h, "ports", "port", network_id=net["id"], **body)
    assert r.status_code == 201, r.text
    return r.json()["port"]


async def test_ports_carry_groups_the_default_one_unless_told(site) -> None:
    h = as_(site)
    default = await default_group(site, h)
    web = await group(site, h)
    assert (await _port(site, h))["security_groups"] == [default["id"]]
    port = await _port(site, h, security_groups=[web["id"]])
    assert port["security_groups"] == [web["id"]]
    r = await site.client.put(
        f"{N}/ports/{port['id']}",
        json={"port": {"security_groups": [default["id"], web["id"]]}},
        headers=h,
    )
    assert sorted(r.json()["port"]["security_groups"]) == sorted([default["id"], web["id"]])
    r = await site.client.put(
        f"{N}/ports/{port['id']}", json={"port": {"security_groups": []}}, headers=h
    )
    assert r.json()["port"]["security_groups"] == []
    assert (await _port(site, h, device_owner="network:dhcp"))["security_groups"] == []


async def test_ports_refuse_groups_they_cannot_have(site) -> None:
    h = as_(site)
    theirs = await group(site, as_(site, project="beta"), "theirs")
    r = await post(site, h, "networks", "network", name="n")
    net = r.json()["network"]
    await post(site, h, "subnets", "subnet", network_id=net["id"], cidr="10.4.0.0/24")
    for asked in (["nope"], [theirs["id"]]):
        r = await post(site, h, "ports", "port", network_id=net["id"], security_groups=asked)
        fault(r, 404, "SecurityGroupNotFound", f"Security group {asked[0]} does not exist")
    r = await post(site, h, "ports", "port", network_id=net["id"], port_security_enabled=False)
    fault(r, 400, "InvalidInput", "disabling port security is not supported")
