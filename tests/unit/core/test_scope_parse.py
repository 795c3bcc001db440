"""The scope language: what parses to what, and what a user sees when it does not."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefed.core.errors import BadRequest
from edgefed.core.scope import (
    AllSites,
    Alt,
    Around,
    Both,
    Expr,
    Label,
    Scope,
    ScopeSyntaxError,
    Site,
    parse_expr,
    parse_scope,
)

A, B, C, D = Site("A"), Site("B"), Site("C"), Site("D")


# --- every construct --------------------------------------------------------------------


def test_single_site_entry() -> None:
    scope = parse_scope("{compute: Berlin}")
    assert dict(scope) == {"compute": Site("Berlin")}


def test_all_constructs_and_whitespace_tolerance() -> None:
    scope = parse_scope(
        " {\n compute : Berlin | Denver ,image:*,volume: @region=eu ,"
        "\tnetwork: around( Paris , 20 ms ), placement: (A|B)&C }  "
    )
    assert dict(scope) == {
        "compute": Alt((Site("Berlin"), Site("Denver"))),
        "image": AllSites(),
        "volume": Label("region", "eu"),
        "network": Around("Paris", 20.0),
        "placement": Both((Alt((A, B)), C)),
    }


def test_aliases_are_normalised_and_lookups_accept_them() -> None:
    scope = parse_scope("{nova: A, Glance: B, keystone: C, cinder: D, neutron: A}")
    assert list(scope) == ["compute", "image", "identity", "volume", "network"]
    assert scope["nova"] == A
    assert "glance" in scope and "image" in scope and "placement" not in scope


def test_around_accepts_decimal_and_glued_unit() -> None:
    assert parse_expr("around(Paris,2.5ms)") == Around("Paris", 2.5)
    assert str(Around("Paris", 2.5)) == "around(Paris, 2.5ms)"


def test_a_site_named_around_is_still_a_site() -> None:
    assert parse_expr("around|B") == Alt((Site("around"), B))


def test_labels_allow_kubernetes_style_keys_and_numeric_values() -> None:
    assert parse_expr("@topology.kubernetes.io/zone=12b") == Label(
        "topology.kubernetes.io/zone", "12b"
    )


def test_and_binds_tighter_than_or() -> None:
    assert parse_expr("A|B&C") == Alt((A, Both((B, C))))
    assert parse_expr("A&B|C") == Alt((Both((A, B)), C))
    assert parse_expr("A|B&C") == parse_expr("A|(B&C)")


def test_grouping_is_kept_as_written() -> None:
    assert parse_expr("(A&B)&C") == Both((Both((A, B)), C))
    assert parse_expr("((A))") == A


def test_canonical_text() -> None:
    scope = parse_scope("{ nova : ( A | B ) & C ,glance: A|(B|C)|D&(A&B) }")
    assert str(scope) == "{compute: (A|B)&C, image: A|(B|C)|D&(A&B)}"
    assert parse_scope(str(scope)) == scope


def test_scope_without_an_entry() -> None:
    scope = parse_scope("{compute: A, image: B}")
    assert scope.without("nova") == parse_scope("{image: B}")
    assert parse_scope("{compute: A}").without("compute") is None


def test_scope_is_hashable_and_immutable() -> None:
    scope = parse_scope("{compute: A}")
    assert hash(scope) == hash(parse_scope("{nova: A}"))
    with pytest.raises(TypeError):
        scope["compute"] = B  # type: ignore[index]


# --- errors a user sees -------------------------------------------------------------------


def test_syntax_error_points_at_the_offending_character() -> None:
    with pytest.raises(ScopeSyntaxError) as caught:
        parse_scope("{compute: Berlin&&Denver}")
    error = caught.value
    assert isinstance(error, BadRequest) and error.status == 400
    assert error.position == 17
    first, quoted, caret = error.message.splitlines()
    assert first.startswith("unexpected '&' at position 17 in '{compute: Berlin&&Denver}'")
    assert quoted.strip() == "{compute: Berlin&&Denver}"
    assert caret.index("^") == quoted.index("{") + 17


@pytest.mark.parametrize(
    ("text", "position", "words"),
    [
        ("", 0, "empty scope"),
        ("{}", 1, "unexpected '}'"),
        ("compute: A", 0, "expected '{'"),
        ("{compute: A", 11, "unexpected end of scope"),
        ("{compute A}", 9, "expected ':'"),
        ("{compute: A,}", 12, "unexpected '}'"),
        ("{compute: A} x", 13, "nothing after the closing"),
        ("{comput: A}", 1, "unknown service 'comput'"),
        ("{compute: A, nova: B}", 13, "duplicate entry for compute (nova is an alias"),
        ("{compute: 1abc}", 10, "invalid site name '1abc'"),
        ("{compute: Bérlin}", 11, "unexpected 'é'"),
        ("{compute: A|}", 12, "unexpected '}'"),
        ("{compute: (A|B}", 14, "expected ')'"),
        ("{compute: @region}", 17, "expected '=' after the label key"),
        ("{compute: @=eu}", 11, "a label key"),
        ("{compute: around(Paris)}", 22, "expected ','"),
        ("{compute: around(Paris, 20)}", 26, "expected 'ms' after 20"),
        ("{compute: around(Paris, 20s)}", 24, "a round-trip time"),
        ("{compute: around(Paris, 9999999ms)}", 24, "too large"),
        ("{compute: around(*, 20ms)}", 17, "a site name in around"),
    ],
)
def test_syntax_errors(text: str, position: int, words: str) -> None:
    with pytest.raises(ScopeSyntaxError) as caught:
        parse_scope(text)
    assert caught.value.position == position
    assert words in caught.value.message
    assert f"at position {position}" in caught.value.message


def test_too_deep_nesting_is_a_syntax_error_not_a_crash() -> None:
    with pytest.raises(ScopeSyntaxError, match="nesting deeper"):
        parse_expr("(" * 1000 + "A" + ")" * 1000)


def test_too_long_scope_is_refused() -> None:
    with pytest.raises(ScopeSyntaxError, match="characters long"):
        parse_scope("{compute: " + "|".join(["Berlin"] * 1000) + "}")


def test_control_characters_do_not_break_the_caret_line() -> None:
    with pytest.raises(ScopeSyntaxError) as caught:
        parse_scope("{compute:\tA\x00}")
    lines = caught.value.message.splitlines()
    assert len(lines) == 3
    assert lines[2].index("^") - 2 == 11


# --- properties ---------------------------------------------------------------------------

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
site_names = st.builds(
    str.__add__, st.sampled_from(LETTERS), st.text(LETTERS + "0123456789_.-", max_size=8)
)
label_parts = st.builds(
    str.__add__, st.sampled_from(LETTERS + "0123456789_"), st.text(LETTERS + "09_./-", max_size=6)
)
rtts = st.one_of(
    st.integers(min_value=0, max_value=1_000_000).map(float),
    st.floats(min_value=0, max_value=1_000_000, allow_nan=False, allow_infinity=False),
)
atoms: st.SearchStrategy[Expr] = st.one_of(
    site_names.map(Site),
    st.just(AllSites()),
    st.builds(Label, label_parts, label_parts),
    st.builds(Around, site_names, rtts),
)
exprs: st.SearchStrategy[Expr] = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.lists(inner, min_size=2, max_size=4).map(lambda xs: Both(tuple(xs))),
        st.lists(inner, min_size=2, max_size=4).map(lambda xs: Alt(tuple(xs))),
    ),
    max_leaves=8,
)
scopes = st.dictionaries(
    st.sampled_from(["identity", "compute", "image", "volume", "network", "placement"]),
    exprs,
    min_size=1,
    max_size=3,
).map(Scope)


@settings(max_examples=200, deadline=1000)
@given(exprs)
def test_round_trip_of_expressions(expr: Expr) -> None:
    assert parse_expr(str(expr)) == expr


@settings(max_examples=100, deadline=1000)
@given(scopes)
def test_round_trip_of_scopes(scope: Scope) -> None:
    assert parse_scope(str(scope)) == scope


scope_alphabet = st.sampled_from(list("{}(),:|&*@= \t") + ["compute", "A", "around", "20ms", "é"])


@settings(max_examples=500, deadline=1000)
@given(st.one_of(st.text(max_size=60), st.lists(scope_alphabet, max_size=30).map("".join)))
def test_no_input_crashes_the_parser(text: str) -> None:
    for parse in (parse_scope, parse_expr):
        try:
            parse(text)
        except ScopeSyntaxError as exc:
            assert 0 <= exc.position <= len(text)


small_exprs = st.recursive(
    atoms,
    lambda inner: st.lists(inner, min_size=2, max_size=3).map(lambda xs: Alt(tuple(xs))),
    max_leaves=3,
)


@settings(max_examples=100, deadline=1000)
@given(small_exprs, small_exprs, small_exprs)
def test_precedence_property(a: Expr, b: Expr, c: Expr) -> None:
    def text(e: Expr) -> str:
        return f"({e})"

    assert parse_expr(f"{text(a)}|{text(b)}&{text(c)}") == parse_expr(
        f"{text(a)}|({text(b)}&{text(c)})"
    )
