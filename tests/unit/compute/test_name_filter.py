"""The server-list ``name`` filter: re's answers, in linear time, for any client pattern."""

from __future__ import annotations

import re

import pytest
from compute_testkit import V
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefed.core.errors import BadRequest
from edgefed.services.compute.name_filter import MAX_PATTERN, NameFilter
from edgefed.testkit.inprocess import InProcessSite

PATTERNS = [
    "vm",
    "^vm",
    "vm$",
    "^vm-[0-9]+$",
    "web|db",
    "^(web|db)-\\d{1,2}$",
    "a.c",
    "[^a-c]x",
    "x?y*z+",
    "(ab)*c",
    "^$",
    "",
    "a{2,3}",
    "\\w+\\s\\w+",
    "(a|b)*?c",
    "a++b",
]
NAMES = ["vm", "vm-1", "vm-12", "web-3", "db-10", "abc", "axc", "dx", "ayyz", "ababc", "", "aaa"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_same_answers_as_re(pattern: str) -> None:
    name_filter = NameFilter(pattern)
    for name in [*NAMES, "hello world", "x\ny"]:
        assert name_filter.search(name) == (re.search(pattern, name) is not None), (pattern, name)


pieces = st.sampled_from(
    ["a", "b", ".", "[ab]", "[^a]", "(a|b)", "(ab)", "a*", "b+", "a?", "^", "$"]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(pieces, max_size=6).map("".join), st.text(alphabet="ab\n", max_size=12))
def test_same_answers_as_re_for_generated_patterns(pattern: str, name: str) -> None:
    assert NameFilter(pattern).search(name) == (re.search(pattern, name) is not None)


@pytest.mark.parametrize("pattern", ["(a+)+$", "(a|a)*$", "(a*)*b", ".*.*.*.*.*.*x", "(a|aa)+$"])
def test_catastrophic_patterns_cost_one_step_per_character(pattern: str) -> None:
    """These take re exponential or high-polynomial time on the names below; here each
    character is one remembered step, so the number of distinct steps stays small."""
    name_filter = NameFilter(pattern)
    name = "a" * 5000 + "!"
    assert name_filter.search(name) is (re.search(pattern, "a" * 8 + "!") is not None)
    assert len(name_filter._steps) < 50


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        ("(a)\\1", "no backtracking"),
        ("(?=a)a", "no backtracking"),
        ("(?i)a", "inline flags"),
        ("a{", None),
        ("(", "missing"),
        ("a" * (MAX_PATTERN + 1), "longer than"),
        ("(((a{1,100}){1,100}){1,100})", "states"),
    ],
)
def test_unsupported_or_invalid_patterns_are_a_400(pattern: str, why: str | None) -> None:
    if why is None:  # re reads "a{" as two literals
        assert NameFilter(pattern).search("a{")
        return
    with pytest.raises(BadRequest, match=why):
        NameFilter(pattern)


async def test_server_list_filters_by_name_and_refuses_a_backtracking_pattern(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    h = {**admin_headers, **V}
    r = await site.client.get("/compute/v2.1/servers", params={"name": "^vm-(1|2)$"}, headers=h)
    assert r.status_code == 200 and r.json()["servers"] == []
    r = await site.client.get("/compute/v2.1/servers", params={"name": "(a)\\1"}, headers=h)
    assert r.status_code == 400
    assert "Invalid filter field: name" in r.json()["badRequest"]["message"]
