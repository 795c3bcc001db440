"""The registry as operators see it: the sites with their RTTs, revoking one, how far
this site holds the fleet's revocation events, and the enrollments an authority hands
out."""

from __future__ import annotations

from typing import Any

from sites_kit import Member, enrolled_by, registry_of

from edgefed.services.sites.enrollment import EnrollmentToken
from edgefed.services.sites.routes import MAX_ENROLLMENT_SECONDS
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import admin, ctx_of
from edgefed.testkit.tokens import forge_token


def member_headers(site: InProcessSite) -> dict[str, str]:
    return {"X-Auth-Token": forge_token(ctx_of(site), user="bob", project="demo", role="member")}


async def test_the_sites_list_marks_this_site_and_the_rtts_it_measured(
    site: InProcessSite,
) -> None:
    await registry_of(site).merge([enrolled_by(site, Member("Paris"))])
    registry_of(site).view.rtt["Berlin"] = {"Paris": 42.0}
    r = await site.client.get("/edge/v1/fleet/sites", headers=admin(site))
    assert r.status_code == 200
    sites = {s["name"]: s for s in r.json()["sites"]}
    assert (sites["Berlin"]["self"], sites["Berlin"]["rtt_ms"]) == (True, 0.0)
    assert (sites["Paris"]["self"], sites["Paris"]["rtt_ms"]) == (False, 42.0)
    assert sites["Paris"]["status"] == "active"
    r = await site.client.get("/edge/v1/fleet/sites/Paris", headers=admin(site))
    assert r.json()["site"]["rtt_ms"] == 42.0
    r = await site.client.get("/edge/v1/fleet/sites/Atlantis", headers=admin(site))
    assert r.status_code == 404 and "Atlantis is not in the fleet registry" in r.text
    assert (await site.client.get("/edge/v1/fleet/sites")).status_code == 401


async def test_revoking_a_site_is_an_admins_at_an_authority_and_happens_once(
    site: InProcessSite,
) -> None:
    await registry_of(site).merge([enrolled_by(site, Member("Paris"))])
    r = await site.client.delete("/edge/v1/fleet/sites/Paris", headers=member_headers(site))
    assert r.status_code == 403
    assert registry_of(site).view.active("Paris")
    r = await site.client.delete("/edge/v1/fleet/sites/Berlin", headers=admin(site))
    assert r.status_code == 409 and "cannot revoke itself" in r.text
    r = await site.client.delete("/edge/v1/fleet/sites/Atlantis", headers=admin(site))
    assert r.status_code == 404
    r = await site.client.delete("/edge/v1/fleet/sites/Paris", headers=admin(site))
    assert r.status_code == 204
    first = registry_of(site).view.entries["Paris"]
    assert first.revocation is not None and first.revocation.by == "Berlin"
    assert ctx_of(site).keyring.lookup("Paris") is None and "Paris" not in ctx_of(site).peers
    # Again: nothing new is signed.
    r = await site.client.delete("/edge/v1/fleet/sites/Paris", headers=admin(site))
    assert r.status_code == 204
    assert registry_of(site).view.entries["Paris"] == first
    r = await site.client.get("/edge/v1/fleet/sites/Paris", headers=admin(site))
    assert r.json()["site"]["status"] == "revoked"


async def test_a_member_site_cannot_revoke(site: InProcessSite) -> None:
    registry = registry_of(site)
    await registry.merge([enrolled_by(site, Member("Paris"))])
    # Berlin as a member that Hub enrolled (as if it had joined Hub's fleet).
    hub = Member("Hub")
    await registry.merge([enrolled_by(site, hub, authority=True)])
    registry.view.entries["Berlin"] = Member("Berlin", key=ctx_of(site).signer.private_key).entry(
        by="Hub", by_key=hub.key
    )
    r = await site.client.delete("/edge/v1/fleet/sites/Paris", headers=admin(site))
    assert r.status_code == 403
    assert "Berlin is not a fleet authority" in r.text and "authorities: Hub" in r.text


async def test_the_revocation_state_shows_watermarks_and_arrivals_to_admins(
    site: InProcessSite,
) -> None:
    r = await site.client.get("/edge/v1/fleet/revocations", headers=admin(site))
    assert r.status_code == 200
    state = r.json()["revocations"]
    assert state == {"events": 0, "digest": {}, "synced_seconds_ago": None, "recent": []}
    token = await site.token()
    await site.client.delete(
        "/identity/v3/auth/tokens", headers={"X-Auth-Token": token, "X-Subject-Token": token}
    )
    ctx_of(site).revocations.note_synced()
    state = (await site.client.get("/edge/v1/fleet/revocations", headers=admin(site))).json()
    state = state["revocations"]
    assert state["events"] == 1 and state["digest"] == {"Berlin": 1}
    assert 0.0 <= state["synced_seconds_ago"] < 60.0
    [arrival] = state["recent"]
    assert (arrival["origin"], arrival["seq"]) == ("Berlin", 1)
    r = await site.client.get("/edge/v1/fleet/revocations", headers=member_headers(site))
    assert r.status_code == 403


# -- enrollments --------------------------------------------------------------------------------

ENROLL = "/edge/v1/fleet/enrollments"


async def enroll(site: InProcessSite, headers: dict[str, str], **spec: Any):
    return await site.client.post(ENROLL, json={"enrollment": spec}, headers=headers)


async def test_an_enrollment_says_for_whom_until_when_and_whether_it_makes_an_authority(
    site: InProcessSite,
) -> None:
    now = ctx_of(site).clock()
    r = await enroll(site, admin(site), name="Lyon", expires_in=600, authority=True)
    assert r.status_code == 201, r.text
    made = r.json()["enrollment"]
    assert (made["site"], made["authority"]) == ("Lyon", True)
    assert now + 600 <= made["expires_at"] <= ctx_of(site).clock() + 600
    token = EnrollmentToken.decode(made["token"])
    assert (token.issuer, token.site_name, token.token_id) == ("Berlin", "Lyon", made["id"])
    assert token.issuer_key == registry_of(site).public_key
    # Each enrollment is a token of its own.
    again = (await enroll(site, admin(site), name="Lyon")).json()["enrollment"]
    assert again["id"] != made["id"] and again["token"] != made["token"]
    assert again["authority"] is False


async def test_an_enrollment_lasts_from_a_minute_to_a_week(site: InProcessSite) -> None:
    for seconds in (60, MAX_ENROLLMENT_SECONDS):
        r = await enroll(site, admin(site), name="Lyon", expires_in=seconds)
        assert r.status_code == 201, (seconds, r.text)
    for seconds in (59, MAX_ENROLLMENT_SECONDS + 1, "soon"):
        r = await enroll(site, admin(site), name="Lyon", expires_in=seconds)
        assert r.status_code == 400, (seconds, r.text)
        assert "expires_in" in r.json()["error"]["message"]


async def test_an_enrollment_names_a_site_as_site_names_go(site: InProcessSite) -> None:
    for bad in ("", "1st", "has space", "x" * 64, "a/b"):
        r = await enroll(site, admin(site), name=bad)
        assert r.status_code == 400, (bad, r.text)
        assert "name" in r.json()["error"]["message"]
    r = await enroll(site, admin(site), name="Lyon", colour="blue")
    assert r.status_code == 400
    assert "'colour' was unexpected" in r.json()["error"]["message"]
    assert (await enroll(site, admin(site), name="L" + "y" * 62)).status_code == 201


async def test_only_an_admin_at_an_authority_enrolls(site: InProcessSite) -> None:
    r = await enroll(site, member_headers(site), name="Lyon")
    assert r.status_code == 403
    assert "fleet:create_enrollment" in r.json()["error"]["message"]
    # Berlin as a member that Hub enrolled: it may not enroll in its turn.
    hub = Member("Hub")
    await registry_of(site).merge([enrolled_by(site, hub, authority=True)])
    registry_of(site).view.entries["Berlin"] = Member(
        "Berlin", key=ctx_of(site).signer.private_key
    ).entry(by="Hub", by_key=hub.key)
    r = await enroll(site, admin(site), name="Lyon")
    assert r.status_code == 403
    assert "Berlin is not a fleet authority and cannot enroll sites" in r.text


# -- reading the registry ---------------------------------------------------------------------


async def test_a_site_the_registry_does_not_hold_is_404_naming_it(site: InProcessSite) -> None:
    r = await site.client.get("/edge/v1/fleet/sites/Atlantis", headers=admin(site))
    assert r.status_code == 404
    assert r.json()["error"]["message"] == "site Atlantis is not in the fleet registry"
    r = await site.client.get("/edge/v1/fleet/sites/Berlin", headers=admin(site))
    assert r.json()["site"]["self"] is True and r.json()["site"]["rtt_ms"] == 0.0


async def test_the_registry_needs_a_token_but_the_site_card_and_ping_do_not(
    site: InProcessSite,
) -> None:
    assert (await site.client.get("/edge/v1/fleet/sites")).status_code == 401
    assert (await site.client.get("/edge/v1/fleet/sites/Berlin")).status_code == 401
    assert (await site.client.get("/edge/v1/site")).status_code == 200
    assert (await site.client.get("/edge/v1/ping")).status_code == 204
    # Any project member reads the registry; changing it is an admin's.
    r = await site.client.get("/edge/v1/fleet/sites", headers=member_headers(site))
    assert [s["name"] for s in r.json()["sites"]] == ["Berlin"]
