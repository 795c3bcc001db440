"""The rules that apply to a port, as the compute side reads them (``NetworkRepository.
port_security``), and the ruleset a host makes of them: from the Neutron API to the
verdicts of the nft text, without a kernel."""

from __future__ import annotations

from typing import Any

from tests.unit.network.neutron_kit import N, as_, default_group, group, post, rule
from tests.unit.network.nft_model import Packet, parse, verdict

from edgefed.drivers.hostnet import render
from edgefed.drivers.hostnet.from_store import firewall_plan
from edgefed.store.network import NetworkRepository
from edgefed.testkit.inprocess import InProcessSite


async def ports(site: InProcessSite, h: dict[str, str], *groups: list[str]) -> list[dict[str, Any]]:
    net = (await post(site, h, "networks", "network", name="n")).json()["network"]
    await post(site, h, "subnets", "subnet", network_id=net["id"], cidr="10.8.0.0/24")
    made = []
    for asked in groups:
        r = await post(site, h, "ports", "port", network_id=net["id"], security_groups=asked)
        assert r.status_code == 201, r.text
        made.append(r.json()["port"])
    return made


async def test_a_ports_rules_and_its_remote_groups_members(site) -> None:
    h = as_(site)
    default, web = await default_group(site, h), await group(site, h)
    made = await rule(
        site, h, web["id"], direction="ingress", protocol="tcp", port_range_min=8080,
        port_range_max=8080, remote_group_id=default["id"],
    )  # fmt: skip
    http = made.json()["security_group_rule"]
    p1, p2, p3 = await ports(site, h, [default["id"]], [default["id"]], [web["id"]])
    repo = NetworkRepository(site.app.state.ctx.store)

    view = await repo.port_security(port_ids=[p3["id"]])
    (port,) = view.ports
    assert (port.port_id, port.mac_address, port.security_group_ids) == (
        p3["id"], p3["mac_address"], (web["id"],),
    )  # fmt: skip
    assert port.ip_addresses == (p3["fixed_ips"][0]["ip_address"],)
    assert {r.id for r in port.rules} == {http["id"]} | {
        r["id"] for r in web["security_group_rules"]
    }
    (tcp,) = [r for r in port.rules if r.direction == "ingress"]
    assert (tcp.protocol, tcp.protocol_number, tcp.port_range_min) == ("tcp", 6, 8080)
    # Members of the remote group come from the whole site, not only the ports asked for.
    addresses = sorted(p["fixed_ips"][0]["ip_address"] for p in (p1, p2))
    assert {k: sorted(v) for k, v in view.members.items()} == {default["id"]: addresses}
    assert [p.port_id for p in (await repo.port_security(device_ids=["nothing"])).ports] == []


async def test_what_the_api_says_is_what_the_host_enforces(site) -> None:
    h = as_(site)
    default, web = await default_group(site, h), await group(site, h)
    p1, p2, p3 = await ports(site, h, [default["id"]], [default["id"]], [web["id"]])
    a1, a2, a3 = (p["fixed_ips"][0]["ip_address"] for p in (p1, p2, p3))
    repo = NetworkRepository(site.app.state.ctx.store)

    async def ruleset():
        return parse(render(firewall_plan(await repo.port_security())))

    before = await ruleset()
    assert verdict(before, "forward", Packet(a1, a2, dport=22)) == "accept"
    assert verdict(before, "forward", Packet(a1, a3, dport=8080)) == "drop"
    made = await rule(
        site, h, web["id"], direction="ingress", protocol="6", port_range_min=8080,
        port_range_max=8080, remote_group_id=default["id"],
    )  # fmt: skip
    opened = await ruleset()
    assert verdict(opened, "forward", Packet(a1, a3, dport=8080)) == "accept"
    assert verdict(opened, "forward", Packet(a1, a3, dport=8081)) == "drop"
    assert verdict(opened, "forward", Packet(a3, a1, dport=8080)) == "drop"
    assert verdict(opened, "output", Packet("10.8.0.1", a3, dport=8080)) == "drop"
    rule_id = made.json()["security_group_rule"]["id"]
    assert (
        await site.client.delete(f"{N}/security-group-rules/{rule_id}", headers=h)
    ).status_code == 204
    assert verdict(await ruleset(), "forward", Packet(a1, a3, dport=8080)) == "drop"
