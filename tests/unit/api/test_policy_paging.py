"""Keystone's default roles as policy, and ``limit``/``marker`` paging of collections."""

from __future__ import annotations

import pytest

from edgefed.api.auth import Principal
from edgefed.api.paging import MAX_LIMIT, page, parse_limit
from edgefed.api.policy import (
    can_read_project,
    can_write_project,
    region_roles,
    require_admin,
    require_project_scope,
    require_read,
    require_write,
)
from edgefed.core.errors import BadRequest, Forbidden, ValidationFailed


def principal(*roles: str, project: str | None = "p1") -> Principal:
    claims: dict[str, object] = {"iss": "Berlin", "user": {"id": "u1", "name": "alice"}}
    if project is not None:
        claims["project"] = {"id": project, "name": project, "domain": {"id": "default"}}
    return Principal(token="t", claims=claims, roles=frozenset(roles), user_id="u1")


@pytest.mark.parametrize(
    ("roles", "project", "target", "read", "write"),
    [
        (("admin",), "p1", "p2", True, True),  # admin on any scope: every project
        (("admin",), None, "p2", True, True),
        (("member", "reader"), "p1", "p1", True, True),
        (("member",), "p1", "p1", True, True),
        (("reader",), "p1", "p1", True, False),
        (("member", "reader"), "p1", "p2", False, False),  # another project
        (("member",), None, "p1", False, False),  # not project-scoped
        (("region:eu",), "p1", "p1", False, False),  # no project role
        ((), "p1", "p1", False, False),
        (("member",), "p1", None, False, False),  # a resource of no project
    ],
)
def test_who_reads_and_writes_a_project(
    roles: tuple[str, ...], project: str | None, target: str | None, read: bool, write: bool
) -> None:
    caller = principal(*roles, project=project)
    assert can_read_project(caller, target) is read
    assert can_write_project(caller, target) is write
    if read:
        require_read(caller, target, "image:get")
    else:
        with pytest.raises(Forbidden, match="image:get"):
            require_read(caller, target, "image:get")
    if write:
        require_write(caller, target, "image:delete")
    else:
        with pytest.raises(Forbidden, match="member role on the project required"):
            require_write(caller, target, "image:delete")


def test_admin_only_calls_name_the_action() -> None:
    require_admin(principal("admin"), "fleet:revoke_site")
    with pytest.raises(Forbidden, match="fleet:revoke_site.*admin role required"):
        require_admin(principal("member", "reader"), "fleet:revoke_site")


def test_region_roles_name_the_regions_a_caller_operates() -> None:
    assert region_roles(principal("region:eu", "region:us", "member")) == {"eu", "us"}
    # A bare prefix, a look-alike or no region role binds no region; admin changes nothing
    # here (the fleet views decide what an admin's region roles mean).
    assert region_roles(principal("region:", "regional", "eu")) == frozenset()
    assert region_roles(principal("admin", "region:eu")) == {"eu"}
    assert region_roles(principal()) == frozenset()


def test_project_scope_is_required_where_a_call_acts_in_a_project() -> None:
    assert require_project_scope(principal("member")) == "p1"
    with pytest.raises(Forbidden, match="project-scoped token"):
        require_project_scope(principal("admin", project=None))


@pytest.mark.parametrize(
    ("raw", "limit"),
    [(None, MAX_LIMIT), ("", MAX_LIMIT), ("0", 0), ("7", 7), (str(MAX_LIMIT + 1), MAX_LIMIT)],
)
def test_a_limit_is_read_and_capped(raw: str | None, limit: int) -> None:
    assert parse_limit(raw) == limit


def test_a_limit_has_its_own_default() -> None:
    assert parse_limit(None, default=20) == 20
    assert parse_limit("50", default=20) == 50


@pytest.mark.parametrize(
    ("raw", "message"),
    [("ten", "must be an integer, got 'ten'"), ("1.5", "integer"), ("-1", "zero or more")],
)
def test_a_bad_limit_names_the_field(raw: str, message: str) -> None:
    with pytest.raises(ValidationFailed, match=message) as info:
        parse_limit(raw)
    assert info.value.field == "limit"


ITEMS = [{"id": f"i{n}"} for n in range(5)]


def ids(items: list[dict[str, str]]) -> list[str]:
    return [i["id"] for i in items]


def test_pages_follow_the_marker_and_say_whether_more_follow() -> None:
    first, more = page(ITEMS, limit=2, marker=None, key=lambda i: i["id"])
    assert (ids(first), more) == (["i0", "i1"], True)
    second, more = page(ITEMS, limit=2, marker="i1", key=lambda i: i["id"])
    assert (ids(second), more) == (["i2", "i3"], True)
    last, more = page(ITEMS, limit=2, marker="i3", key=lambda i: i["id"])
    assert (ids(last), more) == (["i4"], False)
    exact, more = page(ITEMS, limit=5, marker=None, key=lambda i: i["id"])
    assert (len(exact), more) == (5, False)
    after_last, more = page(ITEMS, limit=2, marker="i4", key=lambda i: i["id"])
    assert (after_last, more) == ([], False)


def test_a_zero_limit_returns_nothing_but_tells_there_is_more() -> None:
    assert page(ITEMS, limit=0, marker=None, key=lambda i: i["id"]) == ([], True)
    assert page([], limit=0, marker=None, key=lambda i: i["id"]) == ([], False)


def test_an_unknown_marker_is_a_400_naming_it() -> None:
    with pytest.raises(BadRequest, match="marker i9 not found"):
        page(ITEMS, limit=2, marker="i9", key=lambda i: i["id"])
