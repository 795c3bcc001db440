"""Where the router sends a change: the receivers its marks target, a child where all its
owners go, never back to the source it came from, never what may not travel."""

from __future__ import annotations

from edgefed.core.scope_resolve import StaticFleetView
from edgefed.store.sync import Mark, Ref
from edgefed.sync.engine import RoutingTable

FLEET = StaticFleetView(
    sites=("Central", "Berlin", "Denver", "Paris", "Lyon"),
    labels={"Paris": {"region": "eu"}, "Lyon": {"region": "eu"}, "Berlin": {"region": "eu"}},
)
USER, PROJECT, ROLE = "u1", "p1", "r1"
ASSIGNMENT = f"user|{USER}|project|{PROJECT}|{ROLE}"


def table(*marks: Mark, receivers: set[str] | None = None, me: str = "Central") -> RoutingTable:
    by_ref: dict[Ref, list[Mark]] = {}
    for mark in marks:
        by_ref.setdefault((mark.kind, mark.key), []).append(mark)
    accepted = receivers if receivers is not None else set(FLEET.sites) - {me}
    return RoutingTable(marks=by_ref, receivers=accepted, fleet=FLEET, self_name=me)


def mark(kind: str, key: str, to: str, origin: str | None = None) -> Mark:
    return Mark(kind, key, to, origin)


def test_a_marked_resource_goes_to_the_accepted_receivers_it_targets() -> None:
    routes = table(mark("project", PROJECT, "Denver,@region=eu"), receivers={"Denver", "Paris"})
    assert routes.targets(("project", PROJECT)) == {"Denver", "Paris", "Lyon", "Berlin"}
    assert routes.receivers_of(("project", PROJECT)) == {"Denver", "Paris"}
    assert routes.receivers_of(("project", "unmarked")) == set()


def test_a_mark_on_every_resource_of_a_kind_covers_each_one() -> None:
    routes = table(mark("flavor", "*", "Denver"), mark("flavor", "big", "Paris"))
    assert routes.receivers_of(("flavor", "small")) == {"Denver"}
    assert routes.receivers_of(("flavor", "big")) == {"Denver", "Paris"}
    assert routes.forwarded_targets(("flavor", "big")) == "Denver,Paris"
    assert routes.forwarded_targets(("project", "x")) is None


def test_a_child_goes_where_all_its_owners_go() -> None:
    routes = table(mark("user", USER, "Denver,Paris"), mark("project", PROJECT, "Paris,Lyon"))
    assert routes.receivers_of(("role_assignment", ASSIGNMENT)) == {"Paris"}
    assert routes.receivers_of(("group_member", f"g1|{USER}")) == set()  # g1 goes nowhere
    assert routes.receivers_of(("keypair", f"{USER}|k")) == {"Denver", "Paris"}
    with_own = table(
        mark("user", USER, "Denver"),
        mark("project", PROJECT, "Paris"),
        mark("role_assignment", ASSIGNMENT, "Lyon"),
    )
    assert with_own.receivers_of(("role_assignment", ASSIGNMENT)) == {"Lyon"}


def test_a_received_resource_goes_on_but_never_back_to_its_source_or_here() -> None:
    # Berlin received p1 from Central with the target set "*": it passes it on.
    routes = table(mark("project", PROJECT, "*", origin="Central"), me="Berlin")
    assert routes.receivers_of(("project", PROJECT)) == {"Denver", "Paris", "Lyon"}


def test_what_may_not_travel_goes_nowhere_whatever_its_marks() -> None:
    system = f"user|{USER}|system|all|{ROLE}"
    routes = table(
        mark("role_assignment", "*", "*"),
        mark("quota", "*", "*"),
        mark("user", USER, "*"),
    )
    assert routes.receivers_of(("role_assignment", system)) == set()
    assert routes.receivers_of(("quota", "class|default|cores")) == set()
    assert routes.receivers_of(("quota", "project|p9|cores")) != set()
    assert routes.receivers_of(("role_assignment", "not|a|key")) == set()  # malformed
    assert routes.receivers_of(("volume", "v1")) == set()  # not a kind


def test_a_target_set_naming_sites_not_in_the_fleet_reaches_only_those_that_are() -> None:
    routes = table(mark("project", PROJECT, "Tokyo,Denver"), mark("flavor", "f", "@region=asia"))
    assert routes.receivers_of(("project", PROJECT)) == {"Denver"}
    assert routes.receivers_of(("flavor", "f")) == set()
