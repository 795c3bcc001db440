"""The registry as operators see it: the sites with their RTTs, revoking one, and how
far this site holds the fleet's revocation events."""

from __future__ import annotations

from sites_kit import Member, enrolled_by, registry_of

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
