"""Who is calling: a token this site issued carries its roles; a token of another fleet
site proves who, and its roles here come from this site's authority, cached per token
until the identity generation moves; expiry, revocation and staleness always count."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.requests import Request

from edgefed.api.auth import Authenticator, Principal, principal_of
from edgefed.api.authority import ForeignGrant
from edgefed.api.context import Keyring
from edgefed.api.revocation import RevocationList
from edgefed.core.ed25519 import Ed25519PrivateKey
from edgefed.core.errors import Forbidden, Unauthorized
from edgefed.core.revocation import RevocationEvent
from edgefed.core.tokens import TokenSigner

HERE, THERE = (
    TokenSigner(Ed25519PrivateKey.generate(), kid="Berlin"),
    TokenSigner(Ed25519PrivateKey.generate(), kid="Paris"),
)


class FakeAuthority:
    """This site's answer for foreign tokens: the roles the test grants, counted."""

    def __init__(self, roles: frozenset[str] = frozenset({"member"})) -> None:
        self.roles = roles
        self.user_id: str | None = None
        self.gen = 1
        self.asked = 0
        self.bump_while_asked = False
        self.refuse: str | None = None

    async def foreign_grant(self, claims: Mapping[str, Any]) -> ForeignGrant:
        self.asked += 1
        if self.refuse:
            raise Unauthorized(self.refuse)
        if self.bump_while_asked:
            self.gen += 1
        return ForeignGrant(user_id=self.user_id or claims["user"]["id"], roles=self.roles)

    def generation(self) -> int:
        return self.gen


def context(now: list[float], authority: FakeAuthority | None = None) -> Any:
    keyring = Keyring(keys={"Berlin": HERE.public_key, "Paris": THERE.public_key})
    revocations = RevocationList(self_name="Berlin", monotonic=lambda: now[0])
    return SimpleNamespace(
        name="Berlin",
        clock=lambda: now[0],
        keyring=keyring,
        revocations=revocations,
        authority=authority,
    )


def claims(
    issuer: str = "Berlin",
    *,
    iat: float = 1000.0,
    exp: float = 2000.0,
    roles: tuple[str, ...] = ("admin",),
    **scope: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "iss": issuer,
        "iat": iat,
        "exp": exp,
        "jti": f"audit-{iat}",
        "user": {"id": "u-alice", "name": "alice", "domain": {"id": "default"}},
        "roles": [{"id": r, "name": r} for r in roles],
    }
    out.update(scope or {"project": {"id": "p1", "name": "research", "domain": {"id": "d1"}}})
    return out


def token(issuer: str = "Berlin", **kwargs: Any) -> str:
    return (HERE if issuer == "Berlin" else THERE).sign(claims(issuer, **kwargs))


async def test_a_local_token_carries_its_claimed_roles() -> None:
    ctx = context([1500.0])
    principal = await Authenticator().authenticate(ctx, token(roles=("member", "reader")))
    assert principal.local and principal.issuer == "Berlin"
    assert principal.roles == {"member", "reader"} and not principal.is_admin
    assert (principal.user_id, principal.user_name, principal.user_domain_id) == (
        "u-alice",
        "alice",
        "default",
    )
    assert (principal.project_id, principal.project_domain_id) == ("p1", "d1")
    assert principal.domain_id is None and not principal.system
    assert principal.expires_at == 2000.0


async def test_a_foreign_tokens_roles_come_from_this_site_never_from_its_claims() -> None:
    authority = FakeAuthority(frozenset({"reader"}))
    authority.user_id = "u-alice-from-paris"
    ctx = context([1500.0], authority)
    principal = await Authenticator().authenticate(ctx, token("Paris", roles=("admin",)))
    assert not principal.local
    assert principal.roles == {"reader"} and not principal.is_admin
    assert principal.user_id == "u-alice-from-paris"  # the id the authority decided


async def test_a_foreign_grant_is_cached_until_the_identity_generation_moves() -> None:
    authority = FakeAuthority()
    ctx, auth = context([1500.0], authority), Authenticator()
    paris = token("Paris")
    first = await auth.authenticate(ctx, paris)
    assert await auth.authenticate(ctx, paris) is first
    assert authority.asked == 1
    # A role removed here (an identity write): the next request sees it.
    authority.roles, authority.gen = frozenset({"reader"}), 2
    assert (await auth.authenticate(ctx, paris)).roles == {"reader"}
    assert authority.asked == 2
    # forget() drops the token from both caches.
    auth.forget(paris)
    await auth.authenticate(ctx, paris)
    assert authority.asked == 3


async def test_a_grant_computed_while_the_generation_moved_is_not_cached() -> None:
    authority = FakeAuthority()
    authority.bump_while_asked = True
    ctx, auth = context([1500.0], authority), Authenticator()
    paris = token("Paris")
    await auth.authenticate(ctx, paris)
    await auth.authenticate(ctx, paris)
    assert authority.asked == 2


@pytest.mark.parametrize(
    ("scope", "named"),
    [
        ({"project": {"id": "p1", "name": "research"}}, "project research"),
        ({"domain": {"id": "d1", "name": "Eng"}}, "domain Eng"),
        ({"system": {"all": True}}, "system scope"),
    ],
)
async def test_a_scoped_foreign_token_with_no_role_here_is_a_403_naming_who_and_where(
    scope: dict[str, Any], named: str
) -> None:
    ctx = context([1500.0], FakeAuthority(frozenset()))
    with pytest.raises(Forbidden) as info:
        await Authenticator().authenticate(ctx, token("Paris", **scope))
    message = info.value.message
    assert "alice (a user of Paris) has no role at Berlin" in message
    assert named in message


async def test_an_unscoped_foreign_token_authenticates_with_no_roles() -> None:
    ctx = context([1500.0], FakeAuthority(frozenset()))
    unscoped = THERE.sign({k: v for k, v in claims("Paris").items() if k != "project"})
    principal = await Authenticator().authenticate(ctx, unscoped)
    assert principal.roles == frozenset() and principal.project_id is None


async def test_foreign_tokens_need_the_authority_and_the_validate_path_refuses_them() -> None:
    ctx = context([1500.0], None)
    with pytest.raises(Unauthorized, match="does not accept tokens of other sites yet"):
        await Authenticator().authenticate(ctx, token("Paris"))
    ctx = context([1500.0], FakeAuthority())
    with pytest.raises(Unauthorized, match="takes tokens issued by Berlin only"):
        Authenticator().validate(ctx, token("Paris"))
    assert Authenticator().validate(ctx, token()).local


async def test_the_authority_may_refuse_a_foreign_user_outright() -> None:
    authority = FakeAuthority()
    authority.refuse = "alice is disabled here"
    with pytest.raises(Unauthorized, match="disabled here"):
        await Authenticator().authenticate(context([1500.0], authority), token("Paris"))


async def test_a_cached_token_still_expires() -> None:
    now = [1500.0]
    ctx, auth = context(now), Authenticator()
    berlin = token(exp=1600.0)
    await auth.authenticate(ctx, berlin)
    now[0] = 1600.0
    with pytest.raises(Unauthorized, match="expired"):
        await auth.authenticate(ctx, berlin)
    now[0] = 1700.0  # and stays so once out of the cache
    with pytest.raises(Unauthorized, match="expired"):
        await auth.authenticate(ctx, berlin)


async def test_a_cached_token_of_a_site_revoked_since_is_refused() -> None:
    ctx, auth = context([1500.0], FakeAuthority()), Authenticator()
    paris = token("Paris")
    await auth.authenticate(ctx, paris)
    ctx.keyring.revoked.add("Paris")
    with pytest.raises(Unauthorized, match="unknown site \\('Paris'\\)"):
        await auth.authenticate(ctx, paris)


async def test_a_cached_token_revoked_since_is_refused() -> None:
    authority = FakeAuthority()
    ctx, auth = context([1500.0], authority), Authenticator()
    mine, paris = token(iat=1000.0), token("Paris", iat=1000.0)
    await auth.authenticate(ctx, mine)
    await auth.authenticate(ctx, paris)
    ctx.revocations.add(RevocationEvent(issued_before=1200.0, user_id="u-alice"))
    for t in (mine, paris):
        with pytest.raises(Unauthorized, match="has been revoked"):
            await auth.authenticate(ctx, t)
    # A token issued after the event is good.
    assert (await auth.authenticate(ctx, token(iat=1300.0))).local


async def test_a_stale_site_refuses_foreign_tokens_even_cached_but_not_its_own() -> None:
    now = [1500.0]
    ctx, auth = context(now, FakeAuthority()), Authenticator()
    ctx.revocations.max_staleness = 60.0
    ctx.revocations.note_synced()
    paris, mine = token("Paris"), token()
    await auth.authenticate(ctx, paris)
    now[0] = 1561.0
    with pytest.raises(Unauthorized, match="cut off from the fleet for 61 s"):
        await auth.authenticate(ctx, paris)
    assert (await auth.authenticate(ctx, mine)).local
    ctx.revocations.note_synced()
    assert not (await auth.authenticate(ctx, paris)).local


@pytest.mark.parametrize(
    "bad",
    ["", "a.b", "not-a-token", HERE.sign(claims(exp=1000.0)), THERE.sign(claims("Berlin"))],
)
async def test_bad_tokens_are_401s(bad: str) -> None:
    with pytest.raises(Unauthorized):
        await Authenticator().authenticate(context([1500.0]), bad)


def request(headers: dict[str, str], ctx: Any, auth: Authenticator) -> Request:
    app = SimpleNamespace(state=SimpleNamespace(ctx=ctx, authenticator=auth))
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "app": app,
    }
    return Request(scope)


async def test_the_request_principal_is_found_once_and_kept_on_the_request() -> None:
    ctx, auth = context([1500.0]), Authenticator()
    with pytest.raises(Unauthorized, match="requires authentication"):
        await principal_of(request({}, ctx, auth))
    conn = request({"X-Auth-Token": token()}, ctx, auth)
    principal = await principal_of(conn)
    assert isinstance(principal, Principal)
    conn.scope["app"].state.authenticator = None  # not asked again
    assert await principal_of(conn) is principal
