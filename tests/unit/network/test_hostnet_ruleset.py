"""The security groups ruleset, rendered from the data model and read back: its
structure, and what it decides for packets (``nft_model`` walks them through it)."""

from __future__ import annotations

import pytest
from tests.unit.network.nft_model import Packet, Ruleset, parse, verdict

from edgefed.drivers.hostnet import FirewallPlan, HostNetError, PortPlan, Rule, render
from edgefed.drivers.hostnet.ruleset import removal

DEFAULT = "0d3f6c2e-6f0b-4c39-9a4e-4d5b1a1f0001"
WEB = "0d3f6c2e-6f0b-4c39-9a4e-4d5b1a1f0002"
# Neutron's default group: ingress from members of the group, any egress.
DEFAULT_RULES = (
    Rule("ingress", remote_group_id=DEFAULT),
    Rule("ingress", "IPv6", remote_group_id=DEFAULT),
    Rule("egress"),
    Rule("egress", "IPv6"),
)
A, B, C = "10.5.0.11", "10.5.0.12", "10.5.0.13"
GATEWAY = "10.5.0.1"


def port(n: int, address: str | None, *groups: str, security: bool = True) -> PortPlan:
    return PortPlan(
        port_id=f"{n}a5e9c1e-0000-4000-8000-00000000000{n}",
        network_id="net-1",
        mac=f"fa:16:3e:00:00:0{n}",
        ips=(address,) if address else (),
        security_group_ids=groups,
        port_security=security,
    )


P1, P2, P3 = port(1, A, DEFAULT), port(2, B, DEFAULT), port(3, C, WEB)


def chain_of(p: PortPlan, direction: str) -> str:
    return f"{direction}_{p.port_id.replace('-', '_')}"


def rendered(*ports: PortPlan, web: tuple[Rule, ...] = (), **members: tuple[str, ...]) -> Ruleset:
    groups = {DEFAULT: DEFAULT_RULES, WEB: web}
    return parse(render(FirewallPlan(ports=ports, groups=groups, members=members)))


def test_one_transaction_replaces_both_tables_whether_or_not_they_exist() -> None:
    text = render(FirewallPlan(ports=(P1,), groups={DEFAULT: DEFAULT_RULES}))
    head = text.splitlines()[:4]
    # Declaring a table first makes its deletion succeed on a host that has none.
    assert head == [
        "table inet edgefed_sg",
        "delete table inet edgefed_sg",
        "table bridge edgefed_spoof",
        "delete table bridge edgefed_spoof",
    ]
    assert removal().splitlines() == head
    ruleset = parse(text)
    assert set(ruleset.tables) == {("inet", "edgefed_sg"), ("bridge", "edgefed_spoof")}
    # Rendering is a function of the plan: applying it again changes nothing.
    assert render(FirewallPlan(ports=(P1,), groups={DEFAULT: DEFAULT_RULES})) == text


def test_hooks_let_established_traffic_and_dhcp_through_before_the_ports() -> None:
    sg = rendered(P1).sg
    assert sg.chains["forward"][1:] == [
        "ct state established,related accept",
        "ct state invalid drop",
        "ip saddr vmap @port_out",
        "ip daddr vmap @port_in",
    ]
    assert "udp sport 67 udp dport 68 accept" in sg.chains["output"]
    assert "udp sport 68 udp dport 67 accept" in sg.chains["input"]
    for hook in ("forward", "output", "input"):
        assert sg.chains[hook][0].startswith(f"type filter hook {hook} priority 0; policy accept")


def test_each_fixed_ip_jumps_to_its_port_chains() -> None:
    sg = rendered(P1, P2).sg
    assert sg.maps["port_in"] == {A: f"jump {chain_of(P1, 'in')}", B: f"jump {chain_of(P2, 'in')}"}
    assert sg.maps["port_out"] == {
        A: f"jump {chain_of(P1, 'out')}",
        B: f"jump {chain_of(P2, 'out')}",
    }


def test_the_default_group_lets_members_in_and_everything_out() -> None:
    ruleset = rendered(P1, P2, P3)
    sg = ruleset.sg
    set_name = f"sg_{DEFAULT.replace('-', '_')}"
    assert sorted(sg.sets[set_name]) == [A, B]
    assert sg.chains[chain_of(P1, "in")] == [f"ip saddr @{set_name} accept", "counter drop"]
    assert sg.chains[chain_of(P1, "out")] == ["return", "counter drop"]
    # Members reach each other; a non-member (P3, another group) does not; replies do.
    assert verdict(ruleset, "forward", Packet(A, B, dport=22)) == "accept"
    assert verdict(ruleset, "forward", Packet(B, A, proto=1, icmp_type=8)) == "accept"
    assert verdict(ruleset, "forward", Packet(C, A, dport=22)) == "drop"
    assert verdict(ruleset, "forward", Packet(C, A, dport=22, ct_state="established")) == "accept"
    # The host (the gateway address in the namespace) is not a member either.
    assert verdict(ruleset, "output", Packet(GATEWAY, A, dport=22)) == "drop"


def test_a_tcp_rule_opens_its_port_range_and_nothing_else() -> None:
    web = (Rule("ingress", protocol=6, port_range_min=80, port_range_max=81,
                remote_ip_prefix="0.0.0.0/0"),)  # fmt: skip
    ruleset = rendered(P1, P3, web=web)
    assert ruleset.sg.chains[chain_of(P3, "in")] == [
        "meta l4proto 6 th dport 80-81 accept",
        "counter drop",
    ]
    assert verdict(ruleset, "forward", Packet(A, C, dport=80)) == "accept"
    assert verdict(ruleset, "forward", Packet(A, C, dport=81)) == "accept"
    assert verdict(ruleset, "forward", Packet(A, C, dport=82)) == "drop"
    assert verdict(ruleset, "forward", Packet(A, C, proto=17, dport=80)) == "drop"
    assert verdict(ruleset, "output", Packet(GATEWAY, C, dport=80)) == "accept"
    # Without the rule, the port is closed again.
    assert verdict(rendered(P1, P3), "forward", Packet(A, C, dport=80)) == "drop"


def test_prefixes_match_the_peer_and_icmp_its_type_and_code() -> None:
    web = (
        Rule("ingress", protocol=1, port_range_min=8, port_range_max=0,
             remote_ip_prefix="10.5.0.8/30"),
        Rule("egress", protocol=17, port_range_min=53, port_range_max=53,
             remote_ip_prefix="10.5.0.11"),
    )  # fmt: skip
    ruleset = rendered(P1, P3, web=web)
    assert ruleset.sg.chains[chain_of(P3, "in")][0] == (
        "ip saddr 10.5.0.8/30 meta l4proto 1 icmp type 8 icmp code 0 accept"
    )
    assert ruleset.sg.chains[chain_of(P3, "out")][0] == (
        "ip daddr 10.5.0.11/32 meta l4proto 17 th dport 53 return"
    )
    assert verdict(ruleset, "forward", Packet(A, C, proto=1, icmp_type=8, icmp_code=0)) == "accept"
    assert verdict(ruleset, "forward", Packet(A, C, proto=1, icmp_type=13, icmp_code=0)) == "drop"
    assert verdict(ruleset, "output", Packet(GATEWAY, C, proto=1, icmp_type=8)) == "drop"
    # Egress is checked at the source, then the destination's ingress: P3 → P1 on
    # UDP 53 leaves P3 but P1 (default group) does not take it from a non-member.
    assert verdict(ruleset, "forward", Packet(C, A, proto=17, dport=53)) == "drop"
    assert verdict(ruleset, "forward", Packet(C, A, proto=17, dport=54)) == "drop"
    assert verdict(ruleset, "input", Packet(C, GATEWAY, proto=17, dport=53, sport=5353)) == "drop"


def test_egress_is_enforced_towards_other_ports_and_the_host() -> None:
    # P3's group allows no egress at all: only replies and DHCP leave it.
    ruleset = rendered(P3, web=(Rule("ingress", remote_ip_prefix="0.0.0.0/0"),))
    assert ruleset.sg.chains[chain_of(P3, "out")] == ["counter drop"]
    assert verdict(ruleset, "input", Packet(C, GATEWAY, dport=22)) == "drop"
    assert verdict(ruleset, "input", Packet(C, GATEWAY, proto=17, sport=68, dport=67)) == "accept"
    assert verdict(ruleset, "input", Packet(C, GATEWAY, ct_state="established")) == "accept"


def test_ipv6_rules_are_not_rendered() -> None:
    only_v6 = (Rule("ingress", "IPv6", remote_ip_prefix="::/0"),)
    assert rendered(P3, web=only_v6).sg.chains[chain_of(P3, "in")] == ["counter drop"]


def test_remote_group_members_come_from_the_site_when_given() -> None:
    # A member on another host of the site is in the set though not a port here.
    sg = rendered(P1, **{DEFAULT: (A, "10.5.0.99")}).sg
    assert sg.sets[f"sg_{DEFAULT.replace('-', '_')}"] == [A, "10.5.0.99"]


def test_each_tap_is_pinned_to_its_mac_and_addresses() -> None:
    spoof = rendered(P1, port(4, None, DEFAULT)).spoof
    assert spoof.chains["prerouting"] == [
        "type filter hook prerouting priority -200; policy accept;",
        "iifname vmap @tap_from",
    ]
    assert spoof.maps["tap_from"] == {
        P1.tap: f"jump from_{P1.port_id.replace('-', '_')}",
        port(4, None).tap: f"jump from_{port(4, None).port_id.replace('-', '_')}",
    }
    assert spoof.chains[f"from_{P1.port_id.replace('-', '_')}"] == [
        "ether saddr != fa:16:3e:00:00:01 counter drop",
        "ether type != { ip, arp } counter drop",
        "arp saddr ether != fa:16:3e:00:00:01 counter drop",
        f"arp saddr ip != {{ 0.0.0.0, {A} }} counter drop",
        "udp sport 67 counter drop",
        "ip saddr 0.0.0.0 udp dport 67 return",
        f"ip saddr != {{ {A} }} counter drop",
    ]
    # A port without an address sends DHCP requests and nothing else over IPv4.
    assert spoof.chains[f"from_{port(4, None).port_id.replace('-', '_')}"][-1] == (
        "ether type ip counter drop"
    )


def test_a_port_without_port_security_is_not_filtered() -> None:
    open_port = port(5, "10.5.0.15", security=False)
    ruleset = rendered(P1, open_port)
    assert "10.5.0.15" not in ruleset.sg.maps["port_in"]
    assert open_port.tap not in ruleset.spoof.maps["tap_from"]
    assert verdict(ruleset, "forward", Packet(C, "10.5.0.15", dport=22)) == "accept"


def test_a_port_without_groups_drops_everything_new() -> None:
    lonely = port(6, "10.5.0.16")
    ruleset = rendered(P1, lonely)
    assert ruleset.sg.chains[chain_of(lonely, "in")] == ["counter drop"]
    assert verdict(ruleset, "forward", Packet(A, "10.5.0.16", dport=22)) == "drop"
    assert verdict(ruleset, "forward", Packet("10.5.0.16", A, dport=22)) == "drop"


def test_two_ports_with_one_address_are_refused() -> None:
    twin = PortPlan("7a5e9c1e-0000", "net-2", "fa:16:3e:00:00:07", (A,))
    with pytest.raises(HostNetError, match=r"address 10\.5\.0\.11 is held by ports"):
        render(FirewallPlan(ports=(P1, twin)))


@pytest.mark.parametrize(
    "make",
    [
        lambda: Rule("sideways"),  # type: ignore[arg-type]
        lambda: Rule("ingress", protocol=256),
        lambda: Rule("ingress", remote_ip_prefix="10.0.0.0/8", remote_group_id=DEFAULT),
        lambda: Rule("ingress", remote_ip_prefix="nowhere"),
        lambda: Rule("ingress", remote_group_id="x; flush ruleset"),
        lambda: PortPlan("p", "n", "FA:16:3E:00:00:01"),
        lambda: PortPlan("p", "n", "fa:16:3e:00:00:01", ("10.0.0.300",)),
        lambda: PortPlan("p; reboot", "n", "fa:16:3e:00:00:01"),
    ],
)
def test_bad_values_are_refused_before_any_text_is_made(make) -> None:
    with pytest.raises(HostNetError):
        make()
