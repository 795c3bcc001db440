"""A compromised site against the rest of the fleet: tokens, registry, joins, revocations.

Three real site processes; Paris has been taken: ``HostileSite`` holds its stolen key
and signs whatever it likes, as a fleet member in good standing would. The fleet maps
no user of one site to roles at another (``trust_admins=False``). Every attack must be
refused with a 4xx (never a 5xx), change nothing, and leave the fleet serving.

On the tree before issue #12 each of these worked: Paris's tokens carried any role to
Berlin; Paris gossiped Denver's entry pointing anywhere; a signed request could be
replayed or sent to another site; a revoked Paris came back with its old join token and
a version of 2**63-1 broke its revocation with a 500; a stored entry with a malformed
key stopped Berlin from restarting; Paris could revoke Berlin's tokens.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from edgefed.core.ed25519 import Ed25519PrivateKey
from edgefed.core.fleet import SiteEntry
from edgefed.core.fleet_rules import enrollment_for, revocation_for, signed
from edgefed.core.revocation import RevocationEvent
from edgefed.core.tokens import b64url_decode, public_key_b64
from edgefed.services.sites.enrollment import EnrollmentToken
from edgefed.testkit.fleet_process import ProcessFleet, password_token
from edgefed.testkit.hostile import HostileSite
from edgefed.testkit.wait import until

pytestmark = pytest.mark.e2e

GOSSIP = "/edge/v1/fleet/gossip"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessFleet]:
    f = ProcessFleet(
        root=tmp_path_factory.mktemp("hostile"),
        names=["Berlin", "Denver", "Paris"],
        trust_admins=False,
    ).start()
    try:
        yield f
    finally:
        f.stop()


@pytest.fixture(scope="module")
def paris(fleet: ProcessFleet) -> HostileSite:
    return HostileSite.from_data_dir("Paris", fleet["Paris"].data_dir)


def admin(fleet: ProcessFleet, site: str) -> dict[str, str]:
    return {"X-Auth-Token": password_token(fleet[site].url, fleet[site].password)}


def registry(fleet: ProcessFleet, site: str) -> dict[str, dict[str, Any]]:
    r = httpx.get(f"{fleet[site].url}/edge/v1/fleet/sites", headers=admin(fleet, site), timeout=30)
    r.raise_for_status()
    return {s["name"]: s for s in r.json()["sites"]}


def still_serving(fleet: ProcessFleet) -> None:
    for name in fleet.names[:2]:
        r = httpx.get(f"{fleet[name].url}/compute/v2.1/servers", headers=admin(fleet, name))
        assert r.status_code == 200, (name, r.text)


def gossip(fleet: ProcessFleet, paris: HostileSite, body: dict[str, Any]) -> httpx.Response:
    return paris.call(fleet["Berlin"].url, target="Berlin", method="POST", path=GOSSIP,
                      payload=body)  # fmt: skip


def test_minted_tokens_carry_no_authority(fleet: ProcessFleet, paris: HostileSite) -> None:
    berlin = fleet["Berlin"].url
    for user in ("mallory", "admin"):  # a user that exists nowhere; Berlin's own admin
        token = {"X-Auth-Token": paris.token(user=user, roles=("admin", "member", "reader"))}
        r = httpx.get(f"{berlin}/identity/v3/users", headers=token)
        assert r.status_code == 403, r.text
        r = httpx.post(
            f"{berlin}/identity/v3/users",
            json={"user": {"name": f"backdoor-{user}", "password": "x" * 16}},
            headers=token,
        )
        assert r.status_code == 403, r.text
        r = httpx.get(f"{berlin}/compute/v2.1/servers?all_tenants=1", headers=token)
        assert r.status_code == 403, r.text
    # No trace: no user was created, mallory was not recorded.
    users = httpx.get(f"{berlin}/identity/v3/users", headers=admin(fleet, "Berlin")).json()
    assert {u["name"] for u in users["users"]} == {"admin"}
    still_serving(fleet)


def test_nobody_rewrites_another_sites_entry(fleet: ProcessFleet, paris: HostileSite) -> None:
    denver = SiteEntry.from_json(registry(fleet, "Berlin")["Denver"])
    evil = fleet["Paris"].public_url or fleet["Paris"].url
    forged = dataclasses.replace(denver, endpoint=evil, version=denver.version + 1)
    # Signed by Paris, Denver's entry does not verify; all or nothing: Paris's own
    # (valid) entry in the same batch is not taken either.
    own = SiteEntry.from_json(registry(fleet, "Berlin")["Paris"])
    bumped = signed(dataclasses.replace(own, version=own.version + 1), paris.key)
    forged = dataclasses.replace(forged, signature=bumped.signature)
    r = gossip(fleet, paris, {"sites": [bumped.to_json(), forged.to_json()]})
    assert r.status_code == 400, r.text
    after = registry(fleet, "Berlin")
    assert after["Denver"]["endpoint"] == denver.endpoint
    assert after["Paris"]["version"] == own.version
    # Nor may it bring a site of its own making: it is no authority.
    sybil_key = Ed25519PrivateKey.generate()
    sybil_pub = public_key_b64(sybil_key.public_key())
    enrollment = enrollment_for(
        "Sybil", sybil_pub, by="Paris", authority=False, at=paris.now(), signer=paris.key
    )
    stranger = SiteEntry(name="Sybil", endpoint=evil, public_key=sybil_pub, enrollment=enrollment)
    r = gossip(fleet, paris, {"sites": [signed(stranger, sybil_key).to_json()]})
    assert r.status_code == 400 and "not an active fleet authority" in r.text
    assert "Sybil" not in registry(fleet, "Berlin")
    # Nor revoke a site.
    revoked = dataclasses.replace(
        denver, revocation=revocation_for(denver, by="Paris", at=paris.now(), signer=paris.key)
    )
    r = gossip(fleet, paris, {"sites": [revoked.to_json()]})
    assert r.status_code == 400, r.text
    assert registry(fleet, "Berlin")["Denver"]["status"] == "active"
    # Malformed fields are a 400 naming them, never stored.
    for change in ({"public_key": "AAAA"}, {"version": 2**63 - 1}, {"endpoint": "file:///etc"}):
        r = gossip(fleet, paris, {"sites": [{**own.to_json(), **change}]})
        assert r.status_code == 400, (change, r.text)
    still_serving(fleet)


def test_signed_requests_cannot_be_replayed_or_redirected(
    fleet: ProcessFleet, paris: HostileSite
) -> None:
    berlin = fleet["Berlin"].url
    body = orjson.dumps({"digest": {}, "revocations": {}})
    headers = {
        "content-type": "application/json",
        **paris.signed_headers(target="Berlin", method="POST", path=GOSSIP, body=body),
    }
    assert httpx.post(berlin + GOSSIP, content=body, headers=headers).status_code == 200
    r = httpx.post(berlin + GOSSIP, content=body, headers=headers)
    assert r.status_code == 401 and "replayed" in r.text
    # Signed for Denver, presented at Berlin.
    for_denver = {
        "content-type": "application/json",
        **paris.signed_headers(target="Denver", method="POST", path=GOSSIP, body=body),
    }
    r = httpx.post(berlin + GOSSIP, content=body, headers=for_denver)
    assert r.status_code == 401 and "addressed to 'Denver'" in r.text
    # A timestamp that is not a finite number.
    nan = {**headers, "x-edgefed-timestamp": "nan", "x-edgefed-nonce": "fresh-nonce"}
    r = httpx.post(berlin + GOSSIP, content=body, headers=nan)
    assert r.status_code == 401, r.text
    still_serving(fleet)


def test_forged_revocations_are_refused(fleet: ProcessFleet, paris: HostileSite) -> None:
    token = password_token(fleet["Berlin"].url, fleet["Berlin"].password)
    claims = orjson.loads(b64url_decode(token.split(".")[1]))
    now = paris.now()
    # Paris revoking Berlin's admin token everywhere: as Paris (not its token) ...
    own = RevocationEvent(
        issued_before=now, audit_id=claims["jti"], issuer="Berlin", origin="Paris", seq=10**6,
        created_at=now,
    ).signed_by(paris.key)  # fmt: skip
    # ... or posing as Berlin.
    posing = RevocationEvent(
        issued_before=now, audit_id=claims["jti"], origin="Berlin", seq=10**6, created_at=now
    ).signed_by(paris.key)
    for event in (own, posing):
        r = paris.call(fleet["Denver"].url, target="Denver", method="POST", path=GOSSIP,
                       payload={"revocation_events": [event.to_json()]})  # fmt: skip
        assert r.status_code == 400, r.text
    r = httpx.get(f"{fleet['Berlin'].url}/compute/v2.1/servers", headers={"X-Auth-Token": token})
    assert r.status_code == 200


def test_a_revoked_site_stays_revoked(fleet: ProcessFleet, paris: HostileSite) -> None:
    """Last: Paris is revoked for good."""
    # Paris, a member, may not revoke: only an authority (Berlin, the founder).
    r = httpx.delete(
        f"{fleet['Paris'].url}/edge/v1/fleet/sites/Denver", headers=admin(fleet, "Paris")
    )
    assert r.status_code == 403 and "authority" in r.text
    r = httpx.delete(
        f"{fleet['Berlin'].url}/edge/v1/fleet/sites/Paris", headers=admin(fleet, "Berlin")
    )
    assert r.status_code == 204, r.text
    assert registry(fleet, "Berlin")["Paris"]["status"] == "revoked"
    # Its tokens and its gossip are refused ...
    r = httpx.get(f"{fleet['Berlin'].url}/compute/v2.1/servers",
                  headers={"X-Auth-Token": paris.token(user="admin")})  # fmt: skip
    assert r.status_code == 401
    assert gossip(fleet, paris, {"digest": {}}).status_code == 401
    # ... and its old join token brings it back neither as it was nor with a huge version.
    join = EnrollmentToken.decode(_join_token(fleet))
    mine = SiteEntry.from_json(registry(fleet, "Berlin")["Paris"])
    for version in (mine.version + 1, 2**53 - 1):
        entry = signed(dataclasses.replace(mine, version=version, revocation=None), paris.key)
        payload = {"token_id": join.token_id, "secret": join.secret, "site": entry.to_json()}
        r = paris.call(fleet["Berlin"].url, target="Berlin", method="POST",
                       path="/edge/v1/fleet/join", payload=payload)  # fmt: skip
        assert 400 <= r.status_code < 500, r.text
    # A revocation is final for that key, whatever the gossip says after (once Denver has
    # heard of it: before, Paris is still a member there, and the revocation still wins).
    until(
        lambda: registry(fleet, "Denver")["Paris"]["status"] == "revoked",
        what="Denver learns that Paris was revoked",
    )
    entry = signed(dataclasses.replace(mine, version=2**53 - 1, revocation=None), paris.key)
    r = paris.call(fleet["Denver"].url, target="Denver", method="POST", path=GOSSIP,
                   payload={"sites": [entry.to_json()]})  # fmt: skip
    assert r.status_code == 401  # not a member any more
    assert registry(fleet, "Berlin")["Paris"]["status"] == "revoked"
    assert registry(fleet, "Denver")["Paris"]["status"] == "revoked"
    still_serving(fleet)


def test_a_bad_stored_entry_does_not_stop_a_restart(fleet: ProcessFleet) -> None:
    import sqlite3

    db = fleet["Denver"].data_dir / "site.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO fleet_sites (name, document, version) VALUES (?, ?, ?)",
            ("Broken", orjson.dumps({"name": "Broken", "public_key": "not-a-key"}).decode(), 1),
        )
    fleet["Denver"].restart()
    assert "Broken" not in registry(fleet, "Denver")
    still_serving(fleet)


def _join_token(fleet: ProcessFleet) -> str:
    for line in fleet["Paris"].extra_config.splitlines():
        if line.startswith("join_token"):
            return line.split("=", 1)[1].strip().strip('"')
    raise AssertionError("Paris joined without a token")
