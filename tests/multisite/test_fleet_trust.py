"""Trust: enrollment, pinned keys, registry gossip, revocation — sites in one process."""

from __future__ import annotations

import contextlib
from pathlib import Path

import httpx
import orjson

from edgefed.core.settings import fleet_admin_mappings
from edgefed.services.sites.gossip import GOSSIP_PATH, answer_body, digest_of, gossip_round
from edgefed.services.sites.registry import rotate_key
from edgefed.testkit.asgi_fleet import FleetTransport
from edgefed.testkit.inprocess import run_site, site_settings
from edgefed.testkit.inprocess_fleet import admin, ctx_of, enroll, fleet, registry
from edgefed.testkit.tokens import forge_token


async def test_join_gossip_and_cross_site_tokens(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver", "Paris"]) as s:
        berlin, denver, paris = s["Berlin"], s["Denver"], s["Paris"]
        # Before joining, Denver does not accept Berlin's tokens.
        r = await denver.client.get("/edge/v1/fleet/sites", headers=admin(berlin))
        assert r.status_code == 401
        assert "unknown site" in r.json()["error"]["message"]

        await enroll(berlin, denver, authority=True)
        await enroll(denver, paris)
        # Paris learned Berlin from Denver's registry at join; Berlin learns Paris by gossip.
        assert "Paris" not in registry(berlin).view.entries
        assert await gossip_round(registry(berlin)) >= 1
        for site in (berlin, denver, paris):
            assert sorted(registry(site).view.entries) == ["Berlin", "Denver", "Paris"]

        # A token issued by Berlin is validated locally by Paris (Berlin's key is pinned).
        r = await paris.client.get("/edge/v1/fleet/sites", headers=admin(berlin))
        assert r.status_code == 200
        assert {x["name"] for x in r.json()["sites"]} == {"Berlin", "Denver", "Paris"}
        # Catalog peers.
        assert ctx_of(paris).fleet_sites().keys() == {"Berlin", "Denver", "Paris"}

        # Sites in agreement exchange digests only: nothing to give, nothing wanted.
        agreed = orjson.loads(answer_body(registry(berlin), digest_of(registry(paris).entries())))
        assert (agreed["sites"], agreed["want"]) == ([], [])
        # A peer holding an older entry is given the newer one; a newer one is wanted.
        older = {**digest_of(registry(paris).entries()), "Denver": (0.0, False, 1)}
        paris_state = digest_of(registry(paris).entries())["Paris"]
        newer = {**digest_of(registry(paris).entries()), "Paris": (paris_state[0], False, 99)}
        assert [e["name"] for e in orjson.loads(answer_body(registry(berlin), older))["sites"]] == [
            "Denver"
        ]
        assert orjson.loads(answer_body(registry(berlin), newer))["want"] == ["Paris"]

        # A malformed digest from a member is a 400 naming it.
        body = orjson.dumps({"digest": {"Paris": "new"}})
        r = await berlin.client.post(
            GOSSIP_PATH,
            content=body,
            headers=registry(paris).signed_headers("Berlin", "POST", GOSSIP_PATH, body),
        )
        assert r.status_code == 400
        assert "digest entry 'Paris'" in r.json()["error"]["message"]


async def test_enrollment_token_is_single_use_and_checked(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver", "Paris"]) as s:
        berlin, denver, paris = s["Berlin"], s["Denver"], s["Paris"]
        r = await berlin.client.post(
            "/edge/v1/fleet/enrollments",
            json={"enrollment": {"name": "Denver"}},
            headers=admin(berlin),
        )
        token = r.json()["enrollment"]["token"]
        r = await denver.client.post(
            "/edge/v1/site/join", json={"token": token}, headers=admin(denver)
        )
        assert r.status_code == 200
        # The same token cannot enroll another site.
        r = await paris.client.post(
            "/edge/v1/site/join", json={"token": token}, headers=admin(paris)
        )
        assert r.status_code == 400
        assert "made for site Denver" in r.json()["error"]["message"]
        # Garbage and non-admins are refused clearly.
        r = await paris.client.post(
            "/edge/v1/site/join", json={"token": "hello-world"}, headers=admin(paris)
        )
        assert r.status_code == 400 and "EF1." in r.json()["error"]["message"]
        member = {"X-Auth-Token": forge_token(ctx_of(berlin), user="bob", role="member")}
        r = await berlin.client.post(
            "/edge/v1/fleet/enrollments", json={"enrollment": {"name": "Lyon"}}, headers=member
        )
        assert r.status_code == 403
        r = await berlin.client.post(
            "/edge/v1/fleet/enrollments",
            json={"enrollment": {"name": "Lyon", "expires_in": "x"}},
            headers=admin(berlin),
        )
        assert r.status_code == 400 and "expires_in" in r.json()["error"]["message"]


async def test_join_refuses_an_issuer_with_another_key(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver"]) as s:
        berlin, denver = s["Berlin"], s["Denver"]
        r = await berlin.client.post(
            "/edge/v1/fleet/enrollments",
            json={"enrollment": {"name": "Denver"}},
            headers=admin(berlin),
        )
        token = r.json()["enrollment"]["token"]
        from edgefed.core.ed25519 import Ed25519PrivateKey
        from edgefed.core.tokens import public_key_b64
        from edgefed.services.sites.enrollment import EnrollmentToken

        decoded = EnrollmentToken.decode(token)
        forged = EnrollmentToken(
            issuer=decoded.issuer,
            issuer_url=decoded.issuer_url,
            issuer_key=public_key_b64(Ed25519PrivateKey.generate().public_key()),
            token_id=decoded.token_id,
            secret=decoded.secret,
            site_name=decoded.site_name,
        )
        r = await denver.client.post(
            "/edge/v1/site/join", json={"token": forged.encode()}, headers=admin(denver)
        )
        assert r.status_code == 401
        assert "pinned" in r.json()["error"]["message"]
        assert "Berlin" not in registry(denver).view.entries


async def test_revocation_spreads_and_invalidates_tokens(tmp_path: Path) -> None:
    async with fleet(tmp_path, ["Berlin", "Denver", "Paris"]) as s:
        berlin, denver, paris = s["Berlin"], s["Denver"], s["Paris"]
        await enroll(berlin, denver)
        await enroll(berlin, paris)
        await gossip_round(registry(denver))
        denver_token = admin(denver)
        r = await paris.client.get("/edge/v1/fleet/sites", headers=denver_token)
        assert r.status_code == 200
        # Berlin revokes Denver; Paris hears about it by gossip, and refuses Denver's tokens.
        r = await berlin.client.delete("/edge/v1/fleet/sites/Denver", headers=admin(berlin))
        assert r.status_code == 204
        await gossip_round(registry(berlin))
        assert not registry(paris).view.active("Denver")
        r = await paris.client.get("/edge/v1/fleet/sites", headers=denver_token)
        assert r.status_code == 401
        # A revoked site may not gossip any more.
        before = registry(denver).view.entries["Paris"]
        await gossip_round(registry(denver))
        assert registry(paris).view.entries["Denver"].status.value == "revoked"
        assert before is not None


async def test_registry_survives_restart(tmp_path: Path) -> None:
    transport = FleetTransport()
    async with fleet(tmp_path, ["Berlin", "Denver"]) as s:
        await enroll(s["Berlin"], s["Denver"])
    settings = site_settings(tmp_path / "denver", name="Denver", gossip_interval_seconds=3600.0)
    async with run_site(settings, transport=transport) as denver:
        assert sorted(registry(denver).view.entries) == ["Berlin", "Denver"]
        assert ctx_of(denver).keyring.lookup("Berlin") is not None


async def test_a_key_rotation_signed_by_the_old_key_moves_the_pin(tmp_path: Path) -> None:
    transport = FleetTransport()
    settings = {
        name: site_settings(
            tmp_path / name.lower(),
            name=name,
            gossip_interval_seconds=3600.0,
            mapping=fleet_admin_mappings(),
        )
        for name in ("Berlin", "Denver")
    }
    async with contextlib.AsyncExitStack() as stack:
        berlin = await stack.enter_async_context(run_site(settings["Berlin"], transport=transport))
        transport.add("berlin.test", httpx.ASGITransport(app=berlin.app))
        async with run_site(settings["Denver"], transport=transport) as denver:
            transport.add("denver.test", httpx.ASGITransport(app=denver.app))
            await enroll(berlin, denver)
            old_token = admin(denver)
            old_key = registry(berlin).view.entries["Denver"].public_key
        # Denver is stopped: its operator rotates its key, then starts it again.
        rotation = rotate_key(tmp_path / "denver", now=2e9)
        assert rotation.old_key == old_key
        async with run_site(settings["Denver"], transport=transport) as denver:
            transport.add("denver.test", httpx.ASGITransport(app=denver.app))
            assert registry(denver).self_entry.public_key == rotation.new_key
            # Peers learn it when they gossip with Denver (its answer carries the entry
            # with the rotation signed by the key they pinned).
            assert await gossip_round(registry(berlin)) == 1
            # Berlin moved its pin: Denver's new tokens are good there, the old ones not.
            assert registry(berlin).view.entries["Denver"].public_key == rotation.new_key
            r = await berlin.client.get("/edge/v1/fleet/sites", headers=admin(denver))
            assert r.status_code == 200, r.text
            r = await berlin.client.get("/edge/v1/fleet/sites", headers=old_token)
            assert r.status_code == 401
