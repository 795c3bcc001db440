"""The receiving side of gossip (``POST /edge/v1/fleet/gossip``): only active members,
signed for this site and once; a body taken whole or refused with a 400; an answer
with what the sender lacks; caught up only when the sender held nothing new."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sites_kit import Member, enrolled_by, registry_of, revoked_by

from edgefed.core.revocation import RevocationEvent
from edgefed.services.sites.gossip import GOSSIP_PATH, digest_of
from edgefed.testkit.hostile import HostileSite
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import ctx_of


async def member(site: InProcessSite, name: str = "Paris") -> HostileSite:
    """A fleet member of ``site`` that signs its own requests."""
    m = Member(name)
    await registry_of(site).merge([enrolled_by(site, m)])
    return HostileSite(name=name, key=m.key)


async def post(
    site: InProcessSite,
    sender: HostileSite,
    payload: Any,
    *,
    target: str = "Berlin",
    headers: dict[str, str] | None = None,
) -> Any:
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    signed = sender.signed_headers(target=target, method="POST", path=GOSSIP_PATH, body=body)
    return await site.client.post(GOSSIP_PATH, content=body, headers={**signed, **(headers or {})})


async def test_a_member_is_answered_with_what_it_lacks(site: InProcessSite) -> None:
    paris = await member(site)
    lyon = enrolled_by(site, Member("Lyon"))
    await registry_of(site).merge([lyon])
    digest = {n: list(s) for n, s in digest_of(registry_of(site).entries()).items()}
    del digest["Lyon"]
    digest["Rome"] = [5.0, False, 1]
    r = await post(site, paris, {"digest": digest, "revocations": {}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert [e["name"] for e in body["sites"]] == ["Lyon"]
    assert body["want"] == ["Rome"]
    assert body["revocations"] == {} and body["revocation_events"] == []
    assert registry_of(site).view.last_seen.keys() == {"Paris"}


async def test_a_push_is_merged_and_answered_with_nothing_wanted(site: InProcessSite) -> None:
    paris = await member(site)
    lyon = enrolled_by(site, Member("Lyon"))
    r = await post(site, paris, {"sites": [lyon.to_json()]})
    assert r.status_code == 200
    assert r.json() == {"sites": [], "want": [], "rtt": {}}
    assert registry_of(site).view.entries["Lyon"] == lyon


async def test_requests_not_from_an_active_member_are_refused(site: InProcessSite) -> None:
    stranger = HostileSite(name="Stranger", key=Member("Stranger").key)
    r = await post(site, stranger, {"digest": {}})
    assert r.status_code == 401
    assert "'Stranger' is not an active member" in r.json()["error"]["message"]
    # Berlin's own name with Berlin's own key: a site does not gossip with itself.
    itself = HostileSite(name="Berlin", key=ctx_of(site).signer.private_key)
    assert (await post(site, itself, {"digest": {}})).status_code == 401
    paris = await member(site)
    entry = registry_of(site).view.entries["Paris"]
    await registry_of(site).merge([revoked_by(site, entry)])
    r = await post(site, paris, {"digest": {}})
    assert r.status_code == 401 and "'Paris' is not an active member" in r.text


async def test_a_request_signed_for_another_site_or_seen_before_is_refused(
    site: InProcessSite,
) -> None:
    paris = await member(site)
    r = await post(site, paris, {"digest": {}}, target="Denver")
    assert r.status_code == 401 and "addressed to 'Denver'" in r.text
    body = orjson.dumps({"digest": {}})
    headers = paris.signed_headers(target="Berlin", method="POST", path=GOSSIP_PATH, body=body)
    first = await site.client.post(GOSSIP_PATH, content=body, headers=headers)
    again = await site.client.post(GOSSIP_PATH, content=body, headers=headers)
    assert (first.status_code, again.status_code) == (200, 401)
    assert "replayed" in again.text
    # The body is what was signed: the same headers on another body are refused.
    other = orjson.dumps({"digest": {"Berlin": [1.0, False, 1]}})
    headers = paris.signed_headers(target="Berlin", method="POST", path=GOSSIP_PATH, body=body)
    r = await site.client.post(GOSSIP_PATH, content=other, headers=headers)
    assert r.status_code == 401 and "signature is invalid" in r.text


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not json", "Malformed JSON"),
        ([], "must be a JSON object"),
        ({"digest": []}, "must be an object"),
        ({"sites": "Lyon"}, "a site entry must be an object"),
        ({"revocations": {"Paris": "x"}}, "must be a number"),
        ({"rtt": {"Berlin": -1.0}}, "RTTs must be finite"),
        ({"rtt": {"Berlin": 3_600_000.0}}, "RTTs must be finite"),
        ({"rtt": {"Berlin": "nan"}}, "RTTs must be finite"),
        ({"rtt": {"Berlin": "fast"}}, "malformed gossip body"),
        ({"rtt": [1, 2]}, "malformed gossip body"),
    ],
)
async def test_a_malformed_body_is_a_400_and_nothing_of_it_is_taken(
    site: InProcessSite, payload: Any, message: str
) -> None:
    paris = await member(site)
    lyon = enrolled_by(site, Member("Lyon"))
    if isinstance(payload, dict):
        payload = {"sites": [lyon.to_json()], **payload}
    r = await post(site, paris, payload)
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]["message"]
    assert "Lyon" not in registry_of(site).view.entries
    assert "Paris" not in registry_of(site).view.rtt


async def test_rtts_a_member_reports_are_kept_for_known_sites_only(site: InProcessSite) -> None:
    paris = await member(site)
    r = await post(site, paris, {"digest": {}, "rtt": {"Berlin": 20.0, "Atlantis": 1.0}})
    assert r.status_code == 200
    view = registry_of(site).view
    assert view.rtt["Paris"] == {"Berlin": 20.0}
    # The answer carries Berlin's own row (nothing measured yet).
    assert r.json()["rtt"] == {}
    view.rtt["Berlin"] = {"Paris": 7.5}
    r = await post(site, paris, {"digest": {}})
    assert r.json()["rtt"] == {"Paris": 7.5}
    # A later report replaces the earlier one (a site that stopped measuring one peer).
    await post(site, paris, {"digest": {}, "rtt": {}})
    assert view.rtt["Paris"] == {}


async def test_caught_up_only_after_a_member_that_held_nothing_new(site: InProcessSite) -> None:
    paris = await member(site)
    revocations = ctx_of(site).revocations
    # Paris holds three events of its own this site has not seen: not caught up.
    r = await post(site, paris, {"digest": {}, "revocations": {"Paris": 3}})
    assert r.status_code == 200
    assert revocations.synced_age() is None
    # Paris holds nothing this site lacks: caught up.
    await post(site, paris, {"digest": {}, "revocations": {}})
    assert revocations.synced_age() is not None


async def test_a_push_of_events_after_an_answer_marks_the_site_caught_up(
    site: InProcessSite,
) -> None:
    paris = await member(site)
    event = RevocationEvent(
        issued_before=paris.now(), user_id="u1", origin="Paris", seq=1, created_at=paris.now()
    ).signed_by(paris.key)
    r = await post(site, paris, {"sites": [], "revocation_events": [event.to_json()]})
    assert r.status_code == 200
    revocations = ctx_of(site).revocations
    assert revocations.holds("Paris", 1)
    assert revocations.synced_age() is not None
    # The answer to a later digest names Paris's watermark: Paris is not sent it back.
    r = await post(site, paris, {"digest": {}, "revocations": {"Paris": 1}})
    assert r.json()["revocations"] == {"Paris": 1}
    assert r.json()["revocation_events"] == []
