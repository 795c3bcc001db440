"""The indexed revocation list answers as a scan of every event would; watermarks; staleness."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefed.api.revocation import RevocationList
from edgefed.core.errors import Unauthorized
from edgefed.core.revocation import RevocationEvent, matches

SMALL = st.sampled_from(["a", "b", None])
SITES = st.sampled_from(["Here", "Berlin", None])


@st.composite
def events(draw: st.DrawFn) -> RevocationEvent:
    event = RevocationEvent(
        issued_before=draw(st.sampled_from([10.0, 20.0, 30.0])),
        user_id=draw(SMALL),
        project_id=draw(SMALL),
        audit_id=draw(SMALL),
        app_cred_id=draw(SMALL),
        issuer=draw(SITES),
        origin=draw(SITES),
    )
    if not event.shape:
        event = dataclasses.replace(event, user_id="a")
    return event


@st.composite
def claims(draw: st.DrawFn) -> dict[str, object]:
    out: dict[str, object] = {
        "iat": draw(st.sampled_from([5.0, 15.0, 25.0, 35.0])),
        "iss": draw(st.sampled_from(["Here", "Berlin"])),
        "user": {"id": draw(st.sampled_from(["a", "b"]))},
        "jti": draw(st.sampled_from(["a", "b"])),
    }
    if draw(st.booleans()):
        out["project"] = {"id": draw(st.sampled_from(["a", "b"]))}
    if draw(st.booleans()):
        out["application_credential"] = {"id": draw(st.sampled_from(["a", "b"]))}
    return out


def effective(event: RevocationEvent) -> RevocationEvent:
    """Another site's event counts for that site's tokens only."""
    if event.origin not in (None, "Here"):
        return dataclasses.replace(event, issuer=event.origin)
    return event


@settings(max_examples=300)
@given(st.lists(events(), max_size=12), claims())
def test_the_index_agrees_with_a_scan(evs: list[RevocationEvent], token: dict[str, object]) -> None:
    revocations = RevocationList(evs, self_name="Here")
    assert revocations.is_revoked(token) == any(matches(effective(e), token) for e in evs)
    # Pruning keeps exactly the events at or after the horizon.
    revocations.prune(20.0)
    kept = [e for e in evs if e.issued_before >= 20.0]
    assert revocations.is_revoked(token) == any(matches(effective(e), token) for e in kept)


def numbered(seq: int, *, floor: int = 1) -> RevocationEvent:
    return RevocationEvent(issued_before=1.0, audit_id=f"t{seq}", origin="Berlin", seq=seq,
                           floor=floor)  # fmt: skip


def test_watermarks_skip_nothing_and_expired_floors() -> None:
    revocations = RevocationList(self_name="Here")
    for seq in (1, 2, 4):
        revocations.add(numbered(seq))
    assert revocations.digest() == {"Berlin": 2}  # 3 is missing: a peer will send it
    assert [e.seq for e in revocations.missing_for({"Berlin": 1}, limit=10)] == [2, 4]
    revocations.add(numbered(3))
    assert revocations.digest() == {"Berlin": 4}
    # A site that never saw Berlin's first 9 (expired): the floor says so.
    late = RevocationList([numbered(12, floor=10)], self_name="Here")
    assert late.digest() == {"Berlin": 9}
    late.add(numbered(10, floor=10))
    assert late.digest() == {"Berlin": 10}


def test_a_site_that_has_not_caught_up_refuses_foreign_tokens() -> None:
    now = [0.0]
    revocations = RevocationList(max_staleness=30.0, monotonic=lambda: now[0])
    with pytest.raises(Unauthorized, match="not yet caught up"):
        revocations.check_fresh("Berlin")
    revocations.note_synced()
    now[0] = 29.0
    revocations.check_fresh("Berlin")
    now[0] = 31.0
    with pytest.raises(Unauthorized, match="cut off from the fleet for 31 s"):
        revocations.check_fresh("Berlin")
    RevocationList(max_staleness=0.0).check_fresh("Berlin")  # 0: never refused


def test_listeners_hear_this_sites_events_only() -> None:
    heard: list[RevocationEvent] = []
    revocations = RevocationList(self_name="Here")
    revocations.listeners.append(heard.append)
    revocations.add(numbered(1))
    mine = dataclasses.replace(numbered(1), origin="Here")
    revocations.add(mine, local=True)
    assert heard == [mine]
