"""Security groups and rules as the network store decides them, inside one write
transaction: no rule twice in a group (by Neutron's reading of "the same rule"), no
group or rule past the quota even when requests race, deletes that cascade to the rules
naming a group, and the view a host enforces."""

from __future__ import annotations

import asyncio

import pytest
from network_support import network_with_subnet

from edgefed.core.errors import Conflict
from edgefed.store.engine import Store
from edgefed.store.network import (
    NetworkRepository,
    NewPort,
    NewSecurityGroup,
    NewSecurityGroupRule,
    Ports,
    SecurityGroupRules,
    SecurityGroups,
)
from edgefed.store.network.rules import rule_key


def new_rule(group_id: str, **fields: object) -> NewSecurityGroupRule:
    values: dict[str, object] = {"direction": "ingress", "project_id": "alpha", **fields}
    return NewSecurityGroupRule(security_group_id=group_id, **values)  # type: ignore[arg-type]


async def new_group(store: Store, name: str = "web", *, project_id: str = "alpha") -> str:
    made = await SecurityGroups(store).add(
        new=NewSecurityGroup(name=name, project_id=project_id), limit=-1, rule_limit=-1
    )
    return made.id


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"protocol": "tcp"}, {"protocol": "6"}),
        ({"protocol": "icmp", "ethertype": "IPv6"}, {"protocol": "ipv6-icmp", "ethertype": "IPv6"}),
        ({"protocol": "icmpv6", "ethertype": "IPv6"}, {"protocol": "58", "ethertype": "IPv6"}),
        ({}, {"remote_ip_prefix": "0.0.0.0/0"}),
        ({"ethertype": "IPv6"}, {"ethertype": "IPv6", "remote_ip_prefix": "::/0"}),
        ({"protocol": "any"}, {}),
        ({"remote_ip_prefix": "10.0.0.5/24"}, {"remote_ip_prefix": "10.0.0.0/24"}),
    ],
)
def test_rules_that_neutron_reads_as_one_have_one_key(
    first: dict[str, object], second: dict[str, object]
) -> None:
    assert rule_key(new_rule("g", **first)) == rule_key(new_rule("g", **second))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({"protocol": "tcp"}, {"protocol": "udp"}),
        ({"protocol": "icmp"}, {"protocol": "ipv6-icmp"}),  # IPv4 ICMP is not ICMPv6
        ({"direction": "egress"}, {}),
        (
            {"port_range_min": 22, "port_range_max": 22},
            {"port_range_min": 22, "port_range_max": 23},
        ),
        ({"remote_ip_prefix": "10.0.0.0/8"}, {}),
        ({"remote_group_id": "other"}, {}),
    ],
)
def test_rules_that_differ_have_different_keys(
    first: dict[str, object], second: dict[str, object]
) -> None:
    assert rule_key(new_rule("g", **first)) != rule_key(new_rule("g", **second))
    assert rule_key(new_rule("g", **first)) != rule_key(new_rule("h", **first))


async def test_a_repeated_rule_is_refused_naming_the_first(store: Store) -> None:
    group = await new_group(store)
    rules = SecurityGroupRules(store)
    first = await rules.add(
        new=new_rule(group, protocol="tcp", port_range_min=22, port_range_max=22), limit=-1
    )
    with pytest.raises(Conflict) as exc:
        await rules.add(
            new=new_rule(group, protocol="6", port_range_min=22, port_range_max=22), limit=-1
        )
    assert str(exc.value) == f"Security group rule already exists. Rule id is {first.id}."
    assert exc.value.details.get("kind") == "SecurityGroupRuleExists"
    # The same rule in another group is another rule.
    other = await new_group(store, "db")
    await rules.add(
        new=new_rule(other, protocol="tcp", port_range_min=22, port_range_max=22), limit=-1
    )


async def test_racing_identical_rules_make_one_rule(store: Store) -> None:
    group = await new_group(store)
    rules = SecurityGroupRules(store)
    results = await asyncio.gather(
        *(rules.add(new=new_rule(group, protocol="udp"), limit=-1) for _ in range(6)),
        return_exceptions=True,
    )
    made = [r for r in results if not isinstance(r, BaseException)]
    assert len(made) == 1
    assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
    found = await SecurityGroups(store).get(id=group)
    assert found is not None
    assert [r.protocol for r in found.rules].count("udp") == 1


async def test_racing_rules_never_pass_the_quota(store: Store) -> None:
    group = await new_group(store)  # two egress rules already count
    rules = SecurityGroupRules(store)

    def port(p: int) -> NewSecurityGroupRule:
        return new_rule(group, protocol="tcp", port_range_min=p, port_range_max=p)

    results = await asyncio.gather(
        *(rules.add(new=port(p), limit=5) for p in range(1000, 1008)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(refused) == 5
    assert {str(r) for r in refused} == {"Quota exceeded for resources: ['security_group_rule']."}
    assert {getattr(r, "details", {}).get("kind") for r in refused} == {"OverQuota"}
    found = await SecurityGroups(store).get(id=group)
    assert found is not None and len(found.rules) == 5


async def test_a_group_needs_room_for_itself_and_its_two_rules(store: Store) -> None:
    groups = SecurityGroups(store)
    await new_group(store, "one")
    with pytest.raises(Conflict, match=r"\['security_group'\]"):
        await groups.add(
            new=NewSecurityGroup(name="two", project_id="alpha"), limit=1, rule_limit=-1
        )
    with pytest.raises(Conflict, match=r"\['security_group_rule'\]"):
        await groups.add(
            new=NewSecurityGroup(name="two", project_id="alpha"), limit=-1, rule_limit=3
        )
    made = await groups.add(
        new=NewSecurityGroup(name="two", project_id="alpha"), limit=2, rule_limit=4
    )
    assert {(r.direction, r.ethertype, r.remote_group_id) for r in made.rules} == {
        ("egress", "IPv4", None),
        ("egress", "IPv6", None),
    }
    # Another project's count is its own.
    await groups.add(new=NewSecurityGroup(name="x", project_id="beta"), limit=1, rule_limit=2)


async def test_racing_groups_never_pass_the_quota(store: Store) -> None:
    groups = SecurityGroups(store)
    results = await asyncio.gather(
        *(groups.add(new=NewSecurityGroup(name=f"g{i}", project_id="alpha"), limit=3, rule_limit=-1)
          for i in range(7)),
        return_exceptions=True,
    )  # fmt: skip
    assert sum(not isinstance(r, BaseException) for r in results) == 3
    assert len(await groups.list(filters={"project_id": "alpha"})) == 3


async def test_deleting_a_group_takes_its_rules_and_those_naming_it(store: Store) -> None:
    target = await new_group(store, "target")
    source = await new_group(store, "source")
    rules = SecurityGroupRules(store)
    naming = await rules.add(new=new_rule(source, remote_group_id=target), limit=-1)
    kept = await rules.add(new=new_rule(source, protocol="tcp"), limit=-1)

    assert await SecurityGroups(store).delete(id=target)
    assert await rules.get(id=naming.id) is None
    assert await rules.get(id=kept.id) is not None
    assert await rules.list(filters={"security_group_id": target}) == []
    assert not await SecurityGroups(store).delete(id=target)  # once


async def test_a_group_a_port_is_in_stays(store: Store) -> None:
    network_id, _ = await network_with_subnet(store)
    group = await new_group(store)
    port = await Ports(store).create(
        new=NewPort(network_id=network_id, project_id="alpha", security_groups=[group])
    )
    with pytest.raises(Conflict, match=f"Security Group {group} in use.") as exc:
        await SecurityGroups(store).delete(id=group)
    assert exc.value.details.get("kind") == "SecurityGroupInUse"
    await Ports(store).delete(id=port.id)
    assert await SecurityGroups(store).delete(id=group)


async def test_groups_are_found_by_id_or_unique_name_in_order(store: Store) -> None:
    web = await new_group(store, "web")
    db = await new_group(store, "db")
    await new_group(store, "twin")
    await new_group(store, "twin")
    await new_group(store, "elsewhere", project_id="beta")
    groups = SecurityGroups(store)

    found = await groups.of_project("alpha", ["db", web])
    assert [g.id for g in found] == [db, web]
    with pytest.raises(LookupError) as exc:  # a shared name, and another project's group
        await groups.of_project("alpha", ["web", "twin", "elsewhere"])
    assert str(exc.value) == "twin, elsewhere"


async def test_reading_through_a_project_makes_its_default_group(store: Store) -> None:
    groups = SecurityGroups(store, ensure_for="alpha")
    listed = await groups.list(filters={"project_id": "alpha"})
    assert [g.name for g in listed] == ["default"]
    assert listed[0].is_default
    default = listed[0]
    ingress = [r for r in default.rules if r.direction == "ingress"]
    assert {r.remote_group_id for r in ingress} == {default.id}  # its own members
    assert await SecurityGroups(store).list(filters={"project_id": "beta"}) == []


async def test_the_host_view_holds_each_ports_rules_and_remote_members(store: Store) -> None:
    network_id, _ = await network_with_subnet(store, "10.1.0.0/28")
    web = await new_group(store, "web")
    db = await new_group(store, "db")
    postgres = new_rule(
        db, protocol="tcp", port_range_min=5432, port_range_max=5432, remote_group_id=web
    )
    ssh = await SecurityGroupRules(store).add(new=postgres, limit=-1)

    async def plug(device: str, groups: list[str]) -> str:
        new = NewPort(
            network_id=network_id, project_id="alpha", device_id=device, security_groups=groups
        )
        return (await Ports(store).create(new=new)).id

    front = await plug("vm-a", [web])
    back = await plug("vm-b", [db])
    bare = await plug("vm-c", [])

    view = await NetworkRepository(store).port_security(device_ids=["vm-b"])
    assert [p.port_id for p in view.ports] == [back]
    seen = view.port(back)
    assert seen.security_group_ids == (db,)
    assert seen.ip_addresses == ("10.1.0.3",)
    assert ssh.id in {r.id for r in seen.rules}
    assert {r.protocol_number for r in seen.rules} == {None, 6}
    # The members of the remote group are taken wherever they run.
    assert view.members == {web: ("10.1.0.2",)}

    everything = await NetworkRepository(store).port_security(network_ids=[network_id])
    assert [p.port_id for p in everything.ports] == [front, back, bare]
    assert everything.port(bare).rules == ()
    assert (await NetworkRepository(store).port_security(port_ids=[])).ports == ()
