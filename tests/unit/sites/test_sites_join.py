"""Enrollment tokens and joins, from both sides: the authority that checks a join
request, and the new site that checks the authority's answer. A join whose answer was
lost is answered again; a token enrolls its name once, with one key."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sites_kit import Member, registry_of

from edgefed.core.errors import BadRequest, Unauthorized, Unavailable
from edgefed.core.fleet_rules import check_incoming
from edgefed.services.sites.enrollment import (
    EnrollmentToken,
    hash_secret,
    new_secret,
    secret_matches,
)
from edgefed.services.sites.gossip import join_until_done
from edgefed.testkit.asgi_fleet import FleetTransport
from edgefed.testkit.hostile import HostileSite
from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings
from edgefed.testkit.inprocess_fleet import admin, ctx_of

JOIN = "/edge/v1/fleet/join"

# ---- tokens -------------------------------------------------------------------------------


def test_a_token_carries_issuer_pinned_key_secret_and_name() -> None:
    token = EnrollmentToken("Berlin", "http://berlin.test", "KEY", "id1", "s3cret", "Lyon")
    text = token.encode()
    assert text.startswith("EF1.") and "s3cret" not in text
    assert EnrollmentToken.decode(f"  {text}\n") == token


def test_a_tokens_url_loses_its_trailing_slash_and_old_tokens_name_no_site() -> None:
    raw = {"n": "Berlin", "u": "http://berlin.test/", "k": "K", "i": "id", "s": "s"}
    from edgefed.core.tokens import b64url

    decoded = EnrollmentToken.decode("EF1." + b64url(orjson.dumps(raw)))
    assert decoded.issuer_url == "http://berlin.test"
    assert decoded.site_name == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hello", "expected it to start with EF1."),
        ("EF1.!!!", "malformed"),
        ("EF1.e30", "malformed"),  # {} : no field
        ("EF1.WzFd", "malformed"),  # [1]
    ],
)
def test_anything_else_is_no_token(text: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        EnrollmentToken.decode(text)


def test_only_the_secrets_hash_is_kept_and_it_matches_only_the_secret() -> None:
    token_id, secret, stored = new_secret()
    assert len(token_id) == 16 and len(secret) >= 32
    assert stored == hash_secret(secret) and secret not in stored
    assert secret_matches(secret, stored)
    assert not secret_matches(secret + "x", stored)
    assert new_secret()[1] != secret


# ---- the authority's side -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def authority_at(tmp_path: Path, now: list[float]) -> AsyncIterator[InProcessSite]:
    settings = site_settings(tmp_path / "berlin", gossip_interval_seconds=3600.0)
    async with run_site(settings, clock=lambda: now[0]) as site:
        yield site


async def enrollment(site: InProcessSite, name: str, **spec: Any) -> EnrollmentToken:
    r = await site.client.post(
        "/edge/v1/fleet/enrollments",
        json={"enrollment": {"name": name, **spec}},
        headers=admin(site),
    )
    assert r.status_code == 201, r.text
    body = r.json()["enrollment"]
    assert body["site"] == name and body["authority"] == spec.get("authority", False)
    return EnrollmentToken.decode(body["token"])


async def join(
    site: InProcessSite,
    token: EnrollmentToken,
    joiner: Member,
    *,
    secret: str | None = None,
    signer: Member | None = None,
) -> httpx.Response:
    """A join request as a new site sends it (its entry, signed by its key)."""
    entry = joiner.entry(by=joiner.name, by_key=joiner.key)
    body = orjson.dumps(
        {
            "token_id": token.token_id,
            "secret": token.secret if secret is None else secret,
            "site": entry.to_json(),
        }
    )
    sender = HostileSite(name=joiner.name, key=(signer or joiner).key)
    headers = sender.signed_headers(target="Berlin", method="POST", path=JOIN, body=body)
    return await site.client.post(JOIN, content=body, headers=headers)


async def test_a_join_enrolls_the_site_and_answers_with_the_registry_and_events(
    tmp_path: Path,
) -> None:
    now = [time.time()]
    async with authority_at(tmp_path, now) as berlin:
        token = await berlin.token()  # an event to hand over: a revoked token
        await berlin.client.delete(
            "/identity/v3/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token}
        )
        lyon = Member("Lyon")
        r = await join(berlin, await enrollment(berlin, "Lyon", authority=True), lyon)
        assert r.status_code == 200, r.text
        body = r.json()
        assert [s["name"] for s in body["sites"]] == ["Berlin", "Lyon"]
        [event] = body["revocation_events"]
        assert event["origin"] == "Berlin"
        entry = registry_of(berlin).view.entries["Lyon"]
        assert entry.public_key == lyon.public_key and entry.authority
        assert entry.enrollment is not None
        assert (entry.enrollment.by, entry.enrollment.at) == ("Berlin", now[0])
        assert ctx_of(berlin).keyring.lookup("Lyon") is not None
        # What the answer says of Lyon is what Berlin stored.
        assert body["sites"][1] == entry.to_json()


async def test_a_join_whose_answer_was_lost_is_answered_again(tmp_path: Path) -> None:
    now = [time.time()]
    async with authority_at(tmp_path, now) as berlin:
        lyon = Member("Lyon")
        token = await enrollment(berlin, "Lyon")
        first = await join(berlin, token, lyon)
        now[0] += 30.0
        again = await join(berlin, token, lyon)
        assert (first.status_code, again.status_code) == (200, 200)
        assert again.json()["sites"] == first.json()["sites"]
        # Another machine with the same token and name: refused for good.
        r = await join(berlin, token, Member("Lyon"))
        assert r.status_code == 401 and "already used" in r.text
        assert registry_of(berlin).view.entries["Lyon"].public_key == lyon.public_key


@pytest.mark.parametrize(
    ("change", "status", "message"),
    [
        ({"secret": "guess"}, 401, "unknown enrollment token"),
        ({"name": "Nice"}, 401, "made for site Lyon, not Nice"),
        ({"signer": "other"}, 401, "signature is invalid"),
        ({"expired": True}, 401, "has expired"),
    ],
)
async def test_a_join_that_does_not_hold_up_is_refused(
    tmp_path: Path, change: dict[str, Any], status: int, message: str
) -> None:
    now = [time.time()]
    async with authority_at(tmp_path, now) as berlin:
        token = await enrollment(berlin, "Lyon", expires_in=60)
        if change.get("expired"):
            now[0] += 61.0
        joiner = Member(change.get("name", "Lyon"))
        r = await join(
            berlin,
            token,
            joiner,
            secret=change.get("secret"),
            signer=Member("Lyon") if change.get("signer") else None,
        )
        assert r.status_code == status, r.text
        assert message in r.json()["error"]["message"]
        assert set(registry_of(berlin).view.entries) == {"Berlin"}
        # A refused join does not use the token up.
        if "expired" not in change:
            assert (await join(berlin, token, Member("Lyon"))).status_code == 200


async def test_a_join_request_without_its_parts_is_a_400(tmp_path: Path) -> None:
    async with authority_at(tmp_path, [time.time()]) as berlin:
        for body in (b"{}", orjson.dumps({"token_id": "x", "secret": "y"})):
            r = await berlin.client.post(JOIN, content=body)
            assert r.status_code == 400, body
            assert "needs token_id, secret and site" in r.json()["error"]["message"]
        for body in (b"[]", b"nope"):
            r = await berlin.client.post(JOIN, content=body)
            assert r.status_code == 400, body
            assert "JSON" in r.json()["error"]["message"]


async def test_a_revoked_name_comes_back_only_with_a_new_key_after_its_revocation(
    tmp_path: Path,
) -> None:
    now = [time.time()]
    async with authority_at(tmp_path, now) as berlin:
        lyon = Member("Lyon")
        assert (await join(berlin, await enrollment(berlin, "Lyon"), lyon)).status_code == 200
        r = await berlin.client.delete("/edge/v1/fleet/sites/Lyon", headers=admin(berlin))
        assert r.status_code == 204
        revoked = registry_of(berlin).view.entries["Lyon"]
        assert revoked.revocation is not None
        # The same machine (its key) cannot come back, even with a fresh token.
        r = await join(berlin, await enrollment(berlin, "Lyon"), lyon)
        assert r.status_code == 401 and "revoked with this key" in r.text
        # A new machine can; its enrollment is after the revocation, even if the clock
        # went back meanwhile.
        now[0] -= 100.0
        new_lyon = Member("Lyon")
        assert (await join(berlin, await enrollment(berlin, "Lyon"), new_lyon)).status_code == 200
        back = registry_of(berlin).view.entries["Lyon"]
        assert back.active and back.public_key == new_lyon.public_key
        assert back.enrollment is not None
        assert back.enrollment.at > revoked.revocation.at
        # Any site that holds the revoked entry takes the new one.
        assert check_incoming(back, local=revoked, known=registry_of(berlin).view.entries)


async def test_enrollments_are_for_new_names_only(tmp_path: Path) -> None:
    async with authority_at(tmp_path, [time.time()]) as berlin:
        for name in ("Berlin",):
            r = await berlin.client.post(
                "/edge/v1/fleet/enrollments",
                json={"enrollment": {"name": name}},
                headers=admin(berlin),
            )
            assert r.status_code == 409 and "already an active member" in r.text
        for bad in ({"name": "1abc"}, {"name": "Lyon", "expires_in": 30}, {"nom": "Lyon"}):
            r = await berlin.client.post(
                "/edge/v1/fleet/enrollments", json={"enrollment": bad}, headers=admin(berlin)
            )
            assert r.status_code == 400, bad
        # Two tokens for one name: the second machine finds the name taken.
        first, second = await enrollment(berlin, "Lyon"), await enrollment(berlin, "Lyon")
        assert (await join(berlin, first, Member("Lyon"))).status_code == 200
        r = await join(berlin, second, Member("Lyon"))
        assert r.status_code == 409 and "already an active member" in r.text


async def test_the_site_card_is_public(tmp_path: Path) -> None:
    async with authority_at(tmp_path, [time.time()]) as berlin:
        r = await berlin.client.get("/edge/v1/site")
        assert r.status_code == 200
        assert r.json()["site"] == registry_of(berlin).self_entry.to_json()
        assert (await berlin.client.get("/edge/v1/ping")).status_code == 204


# ---- the new site's side --------------------------------------------------------------------


@contextlib.asynccontextmanager
async def newcomer(tmp_path: Path, issuer: httpx.MockTransport) -> AsyncIterator[InProcessSite]:
    transport = FleetTransport()
    transport.apps["berlin.test"] = issuer  # type: ignore[assignment]
    settings = site_settings(tmp_path / "lyon", name="Lyon", gossip_interval_seconds=3600.0)
    async with run_site(settings, transport=transport) as site:
        yield site


class FakeIssuer:
    """Berlin as far as a joining site can tell: a key, and answers to joins."""

    def __init__(self) -> None:
        self.member = Member("Berlin")
        self.entry = self.member.entry(by="Berlin", by_key=self.member.key, authority=True)
        self.answer: Any = None
        self.status = 200
        self.requests: list[dict[str, Any]] = []

    def token(self, name: str = "Lyon") -> EnrollmentToken:
        return EnrollmentToken(
            "Berlin", "http://berlin.test", self.member.public_key, "tid", "sec", name
        )

    def enroll(self, request_body: dict[str, Any], *, key: str | None = None) -> dict[str, Any]:
        """What a real authority answers: the registry with the joiner enrolled."""
        from edgefed.core.fleet import SiteEntry
        from edgefed.core.fleet_rules import enrollment_for

        entry = SiteEntry.from_json(request_body["site"])
        enrolled = enrollment_for(
            entry.name,
            key or entry.public_key,
            by="Berlin",
            authority=False,
            at=1000.0,
            signer=self.member.key,
        )
        joined = {**entry.to_json(), "enrollment": enrolled.to_json()}
        return {"sites": [self.entry.to_json(), joined], "revocation_events": []}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        self.requests.append(body)
        reply = self.answer(body) if callable(self.answer) else self.answer
        if isinstance(reply, bytes):
            return httpx.Response(self.status, content=reply)
        return httpx.Response(self.status, json=reply)


async def test_a_site_joins_and_adopts_the_issuers_registry(tmp_path: Path) -> None:
    issuer = FakeIssuer()
    issuer.answer = issuer.enroll
    async with newcomer(tmp_path, httpx.MockTransport(issuer)) as lyon:
        entries = await registry_of(lyon).join_with(issuer.token())
        assert [e.name for e in entries] == ["Berlin", "Lyon"]
        [sent] = issuer.requests
        assert (sent["token_id"], sent["secret"]) == ("tid", "sec")
        assert sent["site"]["public_key"] == registry_of(lyon).public_key
        mine = registry_of(lyon).self_entry
        assert mine.enrollment is not None and mine.enrollment.by == "Berlin"
        assert ctx_of(lyon).keyring.lookup("Berlin") is not None
        assert ctx_of(lyon).revocations.synced_age() is not None
        # Stored: a restart keeps the membership (checked in the store, not the view).
        assert {e.name for e in await registry_of(lyon).repo.all()} == {"Berlin", "Lyon"}


async def test_a_token_for_another_site_is_not_even_presented(tmp_path: Path) -> None:
    issuer = FakeIssuer()
    async with newcomer(tmp_path, httpx.MockTransport(issuer)) as lyon:
        with pytest.raises(BadRequest, match="made for site Nice, not for Lyon"):
            await registry_of(lyon).join_with(issuer.token("Nice"))
        assert issuer.requests == []


@pytest.mark.parametrize(
    ("status", "answer", "error", "message"),
    [
        (401, {"error": {"message": "no"}}, BadRequest, "refused the enrollment \\(401\\)"),
        (200, b"<html>", BadRequest, "answered the enrollment with garbage"),
        (200, {"sites": [{"name": "x"}]}, BadRequest, "with garbage"),
        (200, {"nothing": []}, BadRequest, "with garbage"),
        (200, "no-lyon", Unauthorized, "did not enroll this site with its key"),
        (200, "other-key", Unauthorized, "did not enroll this site with its key"),
        (200, "no-issuer", Unauthorized, "does not hold the key pinned"),
    ],
)
async def test_an_issuer_answer_that_does_not_hold_up_changes_nothing(
    tmp_path: Path, status: int, answer: Any, error: type[Exception], message: str
) -> None:
    issuer = FakeIssuer()
    issuer.status = status

    def reply(body: dict[str, Any]) -> Any:
        good = issuer.enroll(body)
        if answer == "no-lyon":
            return {"sites": good["sites"][:1]}
        if answer == "other-key":
            return issuer.enroll(body, key=Member("Lyon").public_key)
        if answer == "no-issuer":
            return {"sites": good["sites"][1:]}
        return answer

    issuer.answer = reply
    async with newcomer(tmp_path, httpx.MockTransport(issuer)) as lyon:
        before = registry_of(lyon).self_entry  # the fleet it founded when it started
        with pytest.raises(error, match=message):
            await registry_of(lyon).join_with(issuer.token())
        assert set(registry_of(lyon).view.entries) == {"Lyon"}
        assert registry_of(lyon).self_entry == before


async def test_malformed_events_in_the_answer_do_not_undo_the_join(tmp_path: Path) -> None:
    issuer = FakeIssuer()
    issuer.answer = lambda body: {**issuer.enroll(body), "revocation_events": [{"bad": 1}]}
    async with newcomer(tmp_path, httpx.MockTransport(issuer)) as lyon:
        await registry_of(lyon).join_with(issuer.token())
        assert registry_of(lyon).view.active("Berlin")
        # Not caught up with the fleet's revocations, though: gossip will have to.
        assert ctx_of(lyon).revocations.synced_age() is None


async def test_an_unreachable_issuer_is_a_503_naming_it(tmp_path: Path) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with newcomer(tmp_path, httpx.MockTransport(down)) as lyon:
        with pytest.raises(Unavailable, match="cannot reach Berlin at http://berlin.test"):
            await registry_of(lyon).join_with(FakeIssuer().token())


# ---- both sides: an answer lost on the way --------------------------------------------------


class LosesFirstJoinAnswer(FleetTransport):
    """Delivers every request; the answer to the first join never comes back."""

    def __init__(self) -> None:
        super().__init__()
        self.lost = 0
        self.joins = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        self.joins += request.url.path == JOIN
        if request.url.path == JOIN and self.lost == 0:
            self.lost += 1
            await response.aclose()
            raise httpx.ReadError("connection reset before the answer", request=request)
        return response


async def test_a_joining_site_retries_until_its_issuer_answers(tmp_path: Path) -> None:
    transport = LosesFirstJoinAnswer()
    async with contextlib.AsyncExitStack() as stack:
        sites: dict[str, InProcessSite] = {}
        for name in ("Berlin", "Lyon"):
            settings = site_settings(
                tmp_path / name.lower(), name=name, gossip_interval_seconds=3600.0
            )
            sites[name] = await stack.enter_async_context(run_site(settings, transport=transport))
            transport.add(f"{name.lower()}.test", httpx.ASGITransport(app=sites[name].app))
        berlin, lyon = sites["Berlin"], sites["Lyon"]
        token = await enrollment(berlin, "Lyon")
        with pytest.raises(Unavailable):
            await registry_of(lyon).join_with(token)
        # Berlin enrolled Lyon; Lyon does not know yet.
        assert registry_of(berlin).view.active("Lyon")
        assert "Berlin" not in registry_of(lyon).view.entries
        await join_until_done(registry_of(lyon), token, backoff=(0.0,))
        assert (transport.lost, transport.joins) == (1, 2)
        assert registry_of(lyon).self_entry == registry_of(berlin).view.entries["Lyon"]
        # Once joined, it does not present the token again.
        await join_until_done(registry_of(lyon), token, backoff=(0.0,))
        assert transport.joins == 2
