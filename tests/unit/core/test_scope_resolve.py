"""Resolving scope expressions against a fleet: names, labels, neighbourhoods, mistakes."""

from __future__ import annotations

import pytest

from edgefed.core.errors import BadRequest
from edgefed.core.scope import Alt, Both, Site, parse_expr, parse_scope
from edgefed.core.scope_resolve import (
    ScopeResolutionError,
    StaticFleetView,
    resolve_expr,
    resolve_scope,
    sites_of,
)

FLEET = StaticFleetView(
    sites=["Berlin", "Denver", "Paris", "Lyon"],
    labels={
        "Berlin": {"region": "eu", "tier": "far-edge"},
        "Paris": {"region": "eu"},
        "Lyon": {"region": "eu"},
        "Denver": {"region": "us"},
    },
    rtts={("Paris", "Lyon"): 8.0, ("Berlin", "Paris"): 18.5, ("Paris", "Denver"): 140.0},
)


def resolve(text: str) -> object:
    return resolve_expr(parse_expr(text), FLEET)


def sites(*names: str) -> Both:
    return Both(tuple(Site(n) for n in names))


def test_a_known_site_resolves_to_itself() -> None:
    assert resolve("Berlin") == Site("Berlin")


def test_star_is_every_site_in_fleet_order() -> None:
    assert resolve("*") == sites("Berlin", "Denver", "Paris", "Lyon")


def test_label_selects_the_sites_that_carry_it() -> None:
    assert resolve("@region=eu") == sites("Berlin", "Paris", "Lyon")
    assert resolve("@tier=far-edge") == Site("Berlin")


def test_around_uses_measured_rtt_either_way_and_includes_the_center() -> None:
    assert resolve("around(Paris, 20ms)") == sites("Berlin", "Paris", "Lyon")
    assert resolve("around(Paris, 10ms)") == sites("Paris", "Lyon")
    # Lyon-Berlin was never measured: an unknown RTT is not "near".
    assert resolve("around(Lyon, 1000ms)") == sites("Paris", "Lyon")
    assert resolve("around(Denver, 0ms)") == Site("Denver")


def test_parallel_groups_are_flattened_and_sites_run_once() -> None:
    assert resolve("Berlin&*") == sites("Berlin", "Denver", "Paris", "Lyon")
    assert resolve("(Berlin&Paris)&(Paris&Lyon)") == sites("Berlin", "Paris", "Lyon")
    assert resolve("Berlin&Berlin") == Site("Berlin")


def test_fallbacks_are_flattened_and_keep_their_order() -> None:
    assert resolve("(Paris|Berlin)|Paris|Denver") == Alt(
        (Site("Paris"), Site("Berlin"), Site("Denver"))
    )


def test_nested_mixtures_keep_their_meaning() -> None:
    assert resolve("(Berlin|Denver)&Paris") == Both(
        (Alt((Site("Berlin"), Site("Denver"))), Site("Paris"))
    )
    assert resolve("Berlin|@region=us&Paris") == Alt((Site("Berlin"), sites("Denver", "Paris")))


def test_sites_of_lists_every_site_once_in_written_order() -> None:
    assert sites_of(parse_expr("Paris|(Berlin&Paris)|@region=us"), FLEET) == (
        "Paris",
        "Berlin",
        "Denver",
    )


def test_unknown_site_is_a_bad_request_with_a_suggestion() -> None:
    with pytest.raises(ScopeResolutionError) as caught:
        resolve("Berln|Paris")
    assert isinstance(caught.value, BadRequest) and caught.value.status == 400
    assert "unknown site 'Berln'" in caught.value.message
    assert "did you mean 'Berlin'" in caught.value.message


def test_unknown_site_with_wrong_case_suggests_the_right_case() -> None:
    with pytest.raises(ScopeResolutionError, match="did you mean 'Paris'"):
        resolve("paris")


def test_unknown_site_far_from_any_name_lists_the_fleet() -> None:
    with pytest.raises(ScopeResolutionError, match="the fleet has Berlin, Denver, Paris, Lyon"):
        resolve("Tokyo")


def test_unknown_around_center_is_an_error() -> None:
    with pytest.raises(ScopeResolutionError, match="unknown site 'Rome'"):
        resolve("around(Rome, 20ms)")


def test_label_that_matches_nothing_names_the_values_that_exist() -> None:
    with pytest.raises(ScopeResolutionError) as caught:
        resolve("@region=asia")
    assert "no site has the label @region=asia" in caught.value.message
    assert "eu, us" in caught.value.message
    with pytest.raises(ScopeResolutionError, match="no site has a label 'rack'"):
        resolve("@rack=1")


def test_star_on_an_empty_fleet_is_an_error() -> None:
    with pytest.raises(ScopeResolutionError, match="fleet is empty"):
        resolve_expr(parse_expr("*"), StaticFleetView(sites=[]))


def test_resolve_scope_names_the_entry_at_fault() -> None:
    resolved = resolve_scope(parse_scope("{nova: Berlin|Denver, image: @region=us}"), FLEET)
    assert resolved == {"compute": Alt((Site("Berlin"), Site("Denver"))), "image": Site("Denver")}
    with pytest.raises(ScopeResolutionError, match=r"scope entry 'image: Bonn': unknown site"):
        resolve_scope(parse_scope("{compute: Berlin, image: Bonn}"), FLEET)
