"""Who sees which site (services/fleet/access.py), without a site: the regions a token
binds its caller to, where a site's region comes from, and the refusals' words."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from edgefed.api.auth import Principal
from edgefed.core.errors import Forbidden
from edgefed.core.fleet import SiteEntry
from edgefed.core.settings import Location
from edgefed.services.fleet.access import (
    bound_regions,
    can_see,
    region_of,
    require_all,
    require_this_site,
    visible,
)
from edgefed.testkit.fleet_views import fleet_view, site_entry


def caller(*roles: str) -> Principal:
    claims = {"user": {"name": "eve", "domain": {"id": "default"}}, "iss": "Berlin"}
    return Principal(token="t", claims=claims, roles=frozenset(roles), user_id="eve-id")


def entry(name: str, *, region: str = "", labels: dict[str, str] | None = None) -> SiteEntry:
    return site_entry(name, location=Location(region=region), labels=labels or {})


def context(*entries: SiteEntry, name: str = "Berlin", own: dict[str, str] | None = None) -> Any:
    """A site context with the fleet view ``entries`` (None: no fleet yet)."""
    fleet = fleet_view(name, entries) if entries else None
    settings = SimpleNamespace(labels=own or {}, location=Location(region=""))
    return SimpleNamespace(name=name, fleet=fleet, settings=settings)


FLEET = (
    entry("Berlin", labels={"region": "eu"}),
    entry("Paris", region="eu"),
    entry("Denver", labels={"region": "us"}),
    # A label says more than the location: Oslo's region label is "nordics".
    entry("Oslo", region="eu", labels={"region": "nordics"}),
    entry("Nowhere"),
)


# -- which regions a token binds ----------------------------------------------------------


def test_an_admin_is_bound_to_no_region() -> None:
    assert bound_regions(caller("admin", "region:eu")) is None


def test_region_roles_bind_their_values() -> None:
    assert bound_regions(caller("region:eu", "region:us", "reader")) == {"eu", "us"}


@pytest.mark.parametrize("roles", [(), ("member", "reader"), ("region:",), ("regional",)])
def test_a_caller_with_no_region_role_is_refused_fleet_operations(roles) -> None:
    with pytest.raises(Forbidden) as refused:
        bound_regions(caller(*roles))
    assert refused.value.message == (
        "Fleet operations need the admin role or a region operator role (region:<name>)."
    )


# -- where a site's region comes from -----------------------------------------------------


def test_a_sites_region_is_its_label_else_its_locations_region() -> None:
    ctx = context(*FLEET)
    assert [region_of(ctx, s) for s in ("Berlin", "Paris", "Denver", "Oslo", "Nowhere")] == [
        "eu",
        "eu",
        "us",
        "nordics",
        "",
    ]
    assert region_of(ctx, "Atlantis") == ""


def test_before_it_joins_a_fleet_a_site_knows_its_own_region_from_its_settings() -> None:
    ctx = context(own={"region": "eu"})
    assert region_of(ctx, "Berlin") == "eu"
    assert region_of(ctx, "Paris") == ""
    ctx.settings = SimpleNamespace(labels={}, location=Location(region="apac"))
    assert region_of(ctx, "Berlin") == "apac"


# -- what a caller sees -------------------------------------------------------------------


def test_an_operator_sees_the_sites_of_its_regions_only() -> None:
    ctx = context(*FLEET)
    names = [e.name for e in FLEET]
    assert visible(ctx, caller("region:eu"), names) == ["Berlin", "Paris"]
    assert visible(ctx, caller("region:eu", "region:nordics"), names) == ["Berlin", "Paris", "Oslo"]
    assert visible(ctx, caller("region:us"), names) == ["Denver"]
    assert visible(ctx, caller("admin"), names) == names
    # A site without a region is seen by admins only.
    assert not can_see(ctx, caller("region:eu"), "Nowhere")
    assert can_see(ctx, caller("admin"), "Nowhere")


def test_this_site_refuses_an_operator_of_another_region_naming_both() -> None:
    berlin = context(*FLEET)
    require_this_site(berlin, caller("region:eu"))
    with pytest.raises(Forbidden) as refused:
        require_this_site(berlin, caller("region:us", "region:apac"))
    assert refused.value.message == (
        "Site Berlin (region eu) is outside the region(s) of this operator: apac, us."
    )
    nowhere = context(*FLEET, name="Nowhere")
    with pytest.raises(Forbidden) as refused:
        require_this_site(nowhere, caller("region:eu"))
    assert "Site Nowhere (region none)" in refused.value.message


def test_a_scope_reaching_outside_the_region_is_refused_naming_every_site_outside() -> None:
    ctx = context(*FLEET)
    require_all(ctx, caller("region:eu"), ["Berlin", "Paris"], "run on")
    with pytest.raises(Forbidden) as refused:
        require_all(ctx, caller("region:eu"), ["Paris", "Oslo", "Denver", "Berlin"], "run on")
    assert refused.value.message == (
        "Cannot run on: site(s) Denver, Oslo are outside the region(s) of this operator (eu)."
    )
    assert refused.value.details["sites"] == ["Denver", "Oslo"]
    require_all(ctx, caller("admin"), [e.name for e in FLEET], "run on")
