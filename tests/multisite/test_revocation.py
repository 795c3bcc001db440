"""Fleet-wide revocation: made at one site, refused at every other, forged events refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson

from edgefed.core.revocation import RevocationEvent
from edgefed.services.sites.gossip import GOSSIP_PATH, gossip_round
from edgefed.testkit.asgi_fleet import FleetTransport
from edgefed.testkit.hostile import HostileSite
from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings
from edgefed.testkit.inprocess_fleet import admin, ctx_of, fleet, registry


async def alice_everywhere(s: dict[str, InProcessSite]) -> tuple[str, str]:
    """alice, a Berlin user with member on research; every site maps her to member there.
    Her Berlin token, and her user id."""
    for site in s.values():
        r = await site.client.post(
            "/identity/v3/projects", json={"project": {"name": "research"}}, headers=admin(site)
        )
        assert r.status_code == 201, r.text
        if site is not s["Berlin"]:
            mapping = {"site": "Berlin", "user": "alice", "role": "member", "project": "research"}
            r = await site.client.post(
                "/identity/v3/OS-EDGE/mappings", json={"mapping": mapping}, headers=admin(site)
            )
            assert r.status_code == 201, r.text
    berlin = s["Berlin"]
    h = admin(berlin)
    r = await berlin.client.post(
        "/identity/v3/users", json={"user": {"name": "alice", "password": "alice-pw-1"}}, headers=h
    )
    user_id = r.json()["user"]["id"]
    roles = (await berlin.client.get("/identity/v3/roles?name=member", headers=h)).json()["roles"]
    project = (await berlin.client.get("/identity/v3/projects?name=research", headers=h)).json()
    r = await berlin.client.put(
        f"/identity/v3/projects/{project['projects'][0]['id']}/users/{user_id}"
        f"/roles/{roles[0]['id']}",
        headers=h,
    )
    assert r.status_code == 204, r.text
    return await berlin.token("alice", "alice-pw-1", "research"), user_id


async def status(site: InProcessSite, token: str, scope: str | None = None) -> int:
    headers = {"X-Auth-Token": token} | ({"X-Scope": scope} if scope else {})
    return (await site.client.get("/compute/v2.1/servers", headers=headers)).status_code


async def test_a_revoked_token_is_refused_at_every_site_and_by_the_router(
    tmp_path: Path,
) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver", "Paris"], joined=True) as s:
        token, _ = await alice_everywhere(s)
        assert [await status(site, token) for site in s.values()] == [200, 200, 200]
        r = await s["Berlin"].client.delete(
            "/identity/v3/auth/tokens", headers={**admin(s["Berlin"]), "X-Subject-Token": token}
        )
        assert r.status_code == 204
        await registry(s["Berlin"]).feed.drain()  # the push to every peer
        assert [await status(site, token) for site in s.values()] == [401, 401, 401]
        # Berlin's router does not carry it to a site that has not heard either.
        assert await status(s["Berlin"], token, "{compute: Denver}") == 401


async def test_disabled_user_and_removed_role_reach_every_site(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver", "Paris"], joined=True) as s:
        berlin = s["Berlin"]
        token, user_id = await alice_everywhere(s)
        r = await berlin.client.patch(
            f"/identity/v3/users/{user_id}",
            json={"user": {"enabled": False}},
            headers=admin(berlin),
        )
        assert r.status_code == 200, r.text
        await registry(berlin).feed.drain()
        assert [await status(site, token) for site in s.values()] == [401, 401, 401]

        r = await berlin.client.patch(
            f"/identity/v3/users/{user_id}", json={"user": {"enabled": True}}, headers=admin(berlin)
        )
        token = await berlin.token("alice", "alice-pw-1", "research")
        assert await status(s["Paris"], token) == 200
        h = admin(berlin)
        assignments = (
            await berlin.client.get(f"/identity/v3/role_assignments?user.id={user_id}", headers=h)
        ).json()["role_assignments"]
        for a in assignments:
            r = await berlin.client.delete(
                f"/identity/v3/projects/{a['scope']['project']['id']}/users/{user_id}"
                f"/roles/{a['role']['id']}",
                headers=h,
            )
            assert r.status_code == 204, r.text
        await registry(berlin).feed.drain()
        assert [await status(site, token) for site in s.values()] == [401, 401, 401]


async def test_a_site_that_missed_the_push_catches_up_by_gossip(tmp_path: Path) -> None:
    transport = FleetTransport()
    async with fleet(
        tmp_path, ["Berlin", "Denver", "Paris"], joined=True, transport=transport
    ) as s:
        token, _ = await alice_everywhere(s)
        transport.cut.add("denver.test")
        r = await s["Berlin"].client.delete(
            "/identity/v3/auth/tokens", headers={**admin(s["Berlin"]), "X-Subject-Token": token}
        )
        assert r.status_code == 204
        await registry(s["Berlin"]).feed.drain()
        assert await status(s["Denver"], token) == 200  # it did not hear
        transport.cut.discard("denver.test")
        await gossip_round(registry(s["Denver"]))  # from any peer: Paris holds it too
        assert await status(s["Denver"], token) == 401


async def test_a_cut_off_site_refuses_foreign_tokens_until_it_caught_up(
    tmp_path: Path,
) -> None:
    transport = FleetTransport()
    async with fleet(tmp_path, ["Berlin", "Denver"], joined=True, transport=transport) as s:
        token, _ = await alice_everywhere(s)
        revocations = ctx_of(s["Denver"]).revocations
        now = [1000.0]
        revocations.monotonic = lambda: now[0]
        revocations.max_staleness = 30.0
        revocations.note_synced()
        assert await status(s["Denver"], token) == 200
        transport.cut.add("berlin.test")
        now[0] += 31.0
        assert await gossip_round(registry(s["Denver"])) == 0
        r = await s["Denver"].client.get("/compute/v2.1/servers", headers={"X-Auth-Token": token})
        assert r.status_code == 401 and "cut off" in r.text
        # Its own tokens keep working.
        assert await status(s["Denver"], (await s["Denver"].token())) == 200
        transport.cut.discard("berlin.test")
        assert await gossip_round(registry(s["Denver"])) == 1
        assert await status(s["Denver"], token) == 200


async def test_forged_events_are_refused_whole(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver", "Paris"], joined=True) as s:
        token, user_id = await alice_everywhere(s)
        paris = HostileSite(name="Paris", key=ctx_of(s["Paris"]).signer.private_key)
        good = RevocationEvent(
            issued_before=paris.now(), user_id="someone", origin="Paris", seq=1,
            created_at=paris.now(),
        ).signed_by(paris.key)  # fmt: skip
        # Paris signs an event that claims to come from Berlin: the signature fails.
        as_berlin = dataclasses.replace(good, origin="Berlin", user_id=user_id, seq=99)
        as_berlin = dataclasses.replace(
            as_berlin, signature=as_berlin.signed_by(paris.key).signature
        )
        # Paris signs its own event against Berlin's tokens: refused by rule.
        for_berlin = dataclasses.replace(good, seq=2, user_id=user_id, issuer="Berlin").signed_by(
            paris.key
        )
        for bad in (as_berlin, for_berlin):
            body = orjson.dumps({"revocation_events": [good.to_json(), bad.to_json()]})
            r = await s["Denver"].client.post(
                GOSSIP_PATH,
                content=body,
                headers=paris.signed_headers(
                    target="Denver", method="POST", path=GOSSIP_PATH, body=body
                ),  # fmt: skip
            )
            assert r.status_code == 400, r.text
            assert await status(s["Denver"], token) == 200
            assert not ctx_of(s["Denver"]).revocations.holds("Paris", 1)  # all or nothing


async def test_events_are_forgotten_once_no_token_can_match_them(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    settings = site_settings(tmp_path / "s", name="Berlin")
    async with run_site(settings, clock=lambda: now[0]) as site:
        token = await site.token()
        r = await site.client.delete(
            "/identity/v3/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token}
        )
        assert r.status_code == 204
        feed = registry(site).feed
        assert len(ctx_of(site).revocations) == 1
        assert await feed.prune_if_due() == 0  # not due yet
        now[0] += settings.token_ttl_seconds + 86400 + 3601
        assert await feed.prune_if_due() == 1
        assert len(ctx_of(site).revocations) == 0
        assert ctx_of(site).revocations.digest() == {"Berlin": 1}  # the watermark stays
