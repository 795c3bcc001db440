"""The scope tree built by code (sync targets, fleet selections), and resolution's
guarantees: only sites are left, groups are flat, a site runs once per group."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefed.core.scope import parse_expr
from edgefed.core.scope_resolve import (
    ScopeResolutionError,
    StaticFleetView,
    resolve_expr,
    sites_of,
)
from edgefed.core.scope_tree import (
    AllSites,
    Alt,
    Around,
    Both,
    Expr,
    Label,
    Scope,
    Site,
    canonical_service,
    format_ms,
)

# --- nodes built by code check themselves -------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: Site("not a site"),
        lambda: Site(""),
        lambda: Label("region", "e u"),
        lambda: Label("", "eu"),
        lambda: Around("Paris", -1.0),
        lambda: Around("Paris", math.nan),
        lambda: Around("Paris", 1_000_001.0),
        lambda: Around("../x", 5.0),
        lambda: Both((Site("A"),)),
        lambda: Alt(()),
    ],
)
def test_a_node_that_could_not_be_written_cannot_be_built(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


def test_a_scope_normalises_aliases_and_refuses_what_a_header_could_not_say() -> None:
    scope = Scope({"Nova": Site("A"), "glance": AllSites()})
    assert list(scope) == ["compute", "image"]
    assert scope["NOVA"] == scope["compute"] == Site("A")
    assert "Glance" in scope and "volume" not in scope and 42 not in scope
    assert scope == {"compute": Site("A"), "image": AllSites()}
    assert hash(scope) == hash(Scope({"image": AllSites(), "compute": Site("A")}))
    for entries in ({}, {"nova": Site("A"), "compute": Site("B")}, {"swift": Site("A")}):
        with pytest.raises(ValueError):
            Scope(entries)
    assert [canonical_service(n) for n in ("Keystone", "edge", "CINDER", "swift")] == [
        "identity", "fleet", "volume", None,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("value", "text"),
    [(20.0, "20"), (2.5, "2.5"), (0.1, "0.1"), (1e-7, "0.0000001"), (1_000_000.0, "1000000")],
)
def test_a_bound_prints_without_exponent_and_reads_back_the_same(value: float, text: str) -> None:
    assert format_ms(value) == text
    assert parse_expr(str(Around("Paris", value))) == Around("Paris", value)


# --- resolution ---------------------------------------------------------------------------


class OneWayRtts:
    """A fleet where each pair was measured by one end only (each site probes its peers)."""

    def __init__(self, sites: Sequence[str], measured: Mapping[tuple[str, str], float]):
        self.sites = sites
        self.measured = measured

    def site_names(self) -> Sequence[str]:
        return self.sites

    def labels_of(self, site: str) -> Mapping[str, str]:
        return {}

    def rtt_ms(self, a: str, b: str) -> float | None:
        return 0.0 if a == b else self.measured.get((a, b))


def test_around_uses_whichever_end_measured_and_includes_the_bound() -> None:
    fleet = OneWayRtts(["Paris", "Lyon", "Nice", "Oslo"], {("Lyon", "Paris"): 8.0,
                                                          ("Paris", "Nice"): 12.0})  # fmt: skip
    assert resolve_expr(parse_expr("around(Paris, 12ms)"), fleet) == Both(
        (Site("Paris"), Site("Lyon"), Site("Nice"))
    )
    assert resolve_expr(parse_expr("around(Paris, 11.9ms)"), fleet) == Both(
        (Site("Paris"), Site("Lyon"))
    )


def test_an_unknown_site_in_a_large_fleet_shows_ten_names_and_a_count() -> None:
    fleet = StaticFleetView(sites=[f"Edge{n:02d}" for n in range(25)])
    with pytest.raises(ScopeResolutionError) as caught:
        resolve_expr(parse_expr("Tokyo"), fleet)
    assert "Edge00, Edge01" in caught.value.message and "Edge10" not in caught.value.message
    assert caught.value.message.endswith("and 15 more)")


FLEET = StaticFleetView(
    sites=["A", "B", "C", "D"],
    labels={"A": {"r": "x"}, "B": {"r": "x"}, "C": {"r": "y"}, "D": {"r": "y"}},
    rtts={("A", "B"): 5.0, ("B", "C"): 50.0},
)
atoms: st.SearchStrategy[Expr] = st.one_of(
    st.sampled_from(["A", "B", "C", "D"]).map(Site),
    st.just(AllSites()),
    st.sampled_from(["x", "y"]).map(lambda v: Label("r", v)),
    st.builds(Around, st.sampled_from(["A", "B", "C"]), st.sampled_from([0.0, 10.0, 100.0])),
)
exprs: st.SearchStrategy[Expr] = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=4).map(lambda xs: Both(tuple(xs))),
        st.lists(inner, min_size=2, max_size=4).map(lambda xs: Alt(tuple(xs))),
    ),
    max_leaves=10,
)


def well_formed(node: Expr, parent: type | None = None) -> None:
    """Leaves are sites; no group holds a group of its own kind or a site twice."""
    if isinstance(node, Site):
        return
    assert isinstance(node, Both | Alt), node
    assert type(node) is not parent, f"{node} is nested in its own kind"
    members = node.parts if isinstance(node, Both) else node.options
    assert len(members) >= 2
    names = [m.name for m in members if isinstance(m, Site)]
    assert len(names) == len(set(names)), f"{node} runs a site twice"
    for member in members:
        well_formed(member, type(node))


@settings(max_examples=300, deadline=1000)
@given(exprs)
def test_resolution_leaves_flat_groups_of_sites_each_named_once(expr: Expr) -> None:
    resolved = resolve_expr(expr, FLEET)
    well_formed(resolved)
    touched = sites_of(expr, FLEET)
    assert set(touched) <= set(FLEET.sites) and len(touched) == len(set(touched))
    assert resolve_expr(resolved, FLEET) == resolved  # resolving again changes nothing
