"""Subnet requests checked as Neutron's IPAM checks them, without a site: CIDR, gateway,
DNS servers, allocation pools, and the first free address a port gets."""

from __future__ import annotations

import pytest

from edgefed.core.errors import BadRequest, Conflict
from edgefed.services.network.ipam import plan_subnet, pools
from edgefed.store.network import default_pools, first_free
from edgefed.store.network.tables import SubnetRecord


def plan(taken: tuple[str, ...] = (), **data: object):
    return plan_subnet(dict(data), network_id="net-1", taken=taken)


def refused(exc: pytest.ExceptionInfo[BadRequest]) -> str:
    assert exc.value.details.get("kind") == "InvalidInput"
    return exc.value.message


def test_the_gateway_defaults_to_the_first_address_and_may_be_none() -> None:
    assert plan(cidr="192.168.5.0/29").gateway_ip == "192.168.5.1"
    assert plan(cidr="192.168.5.0/29", gateway_ip=None).gateway_ip is None
    assert plan(cidr="192.168.5.0/29", gateway_ip="192.168.5.6").gateway_ip == "192.168.5.6"
    assert plan(cidr="2001:db8::/64").gateway_ip == "2001:db8::1"
    # A host CIDR is read as its network, as Neutron does.
    assert str(plan(cidr="10.1.2.3/24").net) == "10.1.2.0/24"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"cidr": "300.1.1.0/24"}, "'300.1.1.0/24' is not a valid IP subnet (field 'cidr')"),
        ({"cidr": "10.0.0.0/24", "ip_version": 5}, "5 is not in [4, 6] (field 'ip_version')"),
        ({"cidr": "10.0.0.0/24", "ip_version": 6}, "Cidr 10.0.0.0/24 does not match ip_version 6"),
        ({"cidr": "10.0.0.0/31"}, "Cidr 10.0.0.0/31 is too small"),
        ({"cidr": "10.0.0.0/24", "gateway_ip": "10.0.1.1"}, "Gateway IP 10.0.1.1 is not in"),
        ({"cidr": "10.0.0.0/24", "gateway_ip": "gw"}, "'gw' is not a valid IP address"),
        ({"cidr": "10.0.0.0/24", "dns_nameservers": "8.8.8.8"}, "must be a list"),
        ({"cidr": "10.0.0.0/24", "dns_nameservers": ["8.8.8.8", "x"]}, "'x' is not a valid"),
    ],
)
def test_a_bad_request_names_what_is_wrong(data: dict[str, object], says: str) -> None:
    with pytest.raises(BadRequest) as exc:
        plan(**data)
    assert says in refused(exc)


def test_no_cidr_is_neutrons_refusal_without_a_subnet_pool() -> None:
    with pytest.raises(BadRequest) as exc:
        plan()
    assert exc.value.message == (
        "Bad subnets request: a subnetpool must be specified in the absence of a cidr."
    )


def test_subnets_of_one_network_never_overlap() -> None:
    with pytest.raises(BadRequest) as exc:
        plan(("192.168.5.0/29",), cidr="192.168.5.0/28")
    assert "overlaps with another subnet" in refused(exc)
    assert plan(("192.168.5.0/29",), cidr="192.168.5.8/29").gateway_ip == "192.168.5.9"


def test_default_pools_are_every_host_address_but_the_gateway() -> None:
    assert default_pools("192.168.5.0/29", "192.168.5.1") == [
        {"start": "192.168.5.2", "end": "192.168.5.6"}
    ]
    assert default_pools("192.168.5.0/29", "192.168.5.4") == [
        {"start": "192.168.5.1", "end": "192.168.5.3"},
        {"start": "192.168.5.5", "end": "192.168.5.6"},
    ]
    assert default_pools("192.168.5.0/29", None) == [{"start": "192.168.5.1", "end": "192.168.5.6"}]
    # IPv6 has no broadcast address: the last one is a host's.
    assert default_pools("2001:db8::/126", "2001:db8::1") == [
        {"start": "2001:db8::2", "end": "2001:db8::3"}
    ]
    assert default_pools("10.0.0.0/31", None) == []


def test_given_pools_stay_inside_the_cidr_and_off_the_gateway() -> None:
    net = plan(cidr="10.0.0.0/24").net
    assert pools({}, net, "10.0.0.1") == [{"start": "10.0.0.2", "end": "10.0.0.254"}]
    given = {"allocation_pools": [{"start": "10.0.0.10", "end": "10.0.0.20"}]}
    assert pools(given, net, "10.0.0.1") == [{"start": "10.0.0.10", "end": "10.0.0.20"}]
    with pytest.raises(BadRequest) as exc:
        pools({"allocation_pools": [{"start": "10.0.0.10", "end": "10.0.1.5"}]}, net, None)
    assert exc.value.details["kind"] == "InvalidAllocationPool"
    with pytest.raises(BadRequest) as exc:
        pools({"allocation_pools": [{"start": "10.0.0.20", "end": "10.0.0.10"}]}, net, None)
    assert exc.value.details["kind"] == "InvalidAllocationPool"
    with pytest.raises(Conflict) as conflict:
        pools({"allocation_pools": [{"start": "10.0.0.1", "end": "10.0.0.9"}]}, net, "10.0.0.5")
    assert conflict.value.details["kind"] == "GatewayConflictWithAllocationPools"
    for bad in ("10.0.0.1-10.0.0.9", [{"start": "10.0.0.1"}], {"start": 1}):
        with pytest.raises(BadRequest):
            pools({"allocation_pools": bad}, net, None)


def _subnet(pools: list[dict[str, str]], gateway: str | None = "10.0.0.1") -> SubnetRecord:
    import datetime as dt

    now = dt.datetime.now(dt.UTC)
    return SubnetRecord(
        id="s", network_id="n", project_id="p", name="", description="", cidr="10.0.0.0/24",
        ip_version=4, gateway_ip=gateway, allocation_pools=pools, dns_nameservers=[],
        host_routes=[], enable_dhcp=True, created_at=now, updated_at=now,
    )  # fmt: skip


def test_the_first_free_address_skips_used_ones_and_the_gateway() -> None:
    subnet = _subnet(
        [{"start": "10.0.0.1", "end": "10.0.0.4"}, {"start": "10.0.0.9", "end": "10.0.0.9"}]
    )
    assert first_free(subnet, set()) == "10.0.0.2"  # .1 is the gateway
    assert first_free(subnet, {"10.0.0.2", "10.0.0.3"}) == "10.0.0.4"
    assert first_free(subnet, {"10.0.0.2", "10.0.0.3", "10.0.0.4"}) == "10.0.0.9"
    assert first_free(subnet, {"10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.9"}) is None
