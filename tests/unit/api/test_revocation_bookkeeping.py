"""The revocation list's bookkeeping beside its index: what it holds per origin, what a
peer lacks, the generation grants are cached against, and the arrivals operators see."""

from __future__ import annotations

from edgefed.api.revocation import ARRIVALS_KEPT, RevocationList
from edgefed.core.revocation import RevocationEvent


def event(origin: str, seq: int, *, issued_before: float = 10.0, floor: int = 1) -> RevocationEvent:
    return RevocationEvent(
        issued_before=issued_before, audit_id=f"{origin}-{seq}", origin=origin, seq=seq, floor=floor
    )


def test_a_held_number_is_held_whether_kept_or_below_the_watermark() -> None:
    revocations = RevocationList(self_name="Here")
    for seq in (1, 2, 5):
        revocations.add(event("Paris", seq))
    assert [revocations.holds("Paris", n) for n in range(1, 7)] == [
        True,
        True,
        False,
        False,
        True,
        False,
    ]
    assert revocations.last_seq("Paris") == 5
    assert revocations.floor_of("Paris") == 1
    assert (revocations.last_seq("Rome"), revocations.floor_of("Rome")) == (0, 1)
    assert not revocations.holds("Rome", 1)


def test_what_a_peer_lacks_comes_oldest_first_and_bounded() -> None:
    revocations = RevocationList(self_name="Here")
    for seq in (3, 1, 2):
        revocations.add(event("Paris", seq))
    revocations.add(event("Rome", 1))
    lacks = revocations.missing_for({"Paris": 1}, limit=10)
    assert [(e.origin, e.seq) for e in lacks] == [("Paris", 2), ("Paris", 3), ("Rome", 1)]
    assert len(revocations.missing_for({}, limit=2)) == 2
    assert revocations.missing_for({"Paris": 3, "Rome": 1}, limit=10) == []


def test_every_change_moves_the_generation() -> None:
    revocations = RevocationList(self_name="Here")
    start = revocations.generation
    revocations.add(event("Paris", 1, issued_before=5.0))
    assert revocations.generation == start + 1
    assert revocations.prune(1.0) == 0  # nothing to forget: nothing changes
    assert revocations.generation == start + 1
    assert revocations.prune(6.0) == 1
    assert revocations.generation == start + 2
    assert len(revocations) == 0


def test_pruning_keeps_the_watermarks_and_the_floors() -> None:
    revocations = RevocationList(self_name="Here")
    revocations.add(event("Paris", 1, issued_before=5.0))
    revocations.add(event("Paris", 2, issued_before=50.0))
    revocations.prune(10.0)
    assert revocations.digest() == {"Paris": 2}
    assert revocations.holds("Paris", 1) and revocations.floor_of("Paris") == 2
    # Nothing left for a token issued after the pruned event's time, and the later one
    # still revokes its token.
    assert revocations.is_revoked({"iss": "Paris", "iat": 1.0, "jti": "Paris-2"})
    assert not revocations.is_revoked({"iss": "Paris", "iat": 1.0, "jti": "Paris-1"})


def test_arrivals_name_origin_number_and_time_and_stay_bounded() -> None:
    now = [100.0]
    revocations = RevocationList(self_name="Here", clock=lambda: now[0])
    revocations.add(RevocationEvent(issued_before=1.0, user_id="u"))  # not numbered: no arrival
    revocations.add(event("Paris", 1))
    assert list(revocations.arrivals) == [("Paris", 1, 100.0)]
    for seq in range(2, ARRIVALS_KEPT + 10):
        revocations.add(event("Paris", seq))
    assert len(revocations.arrivals) == ARRIVALS_KEPT
    assert revocations.arrivals[-1][1] == ARRIVALS_KEPT + 9


def test_events_loaded_at_start_are_effective_without_counting_as_arrivals() -> None:
    revocations = RevocationList([event("Paris", 1), event("Paris", 2)], self_name="Here")
    assert revocations.digest() == {"Paris": 2}
    assert list(revocations.arrivals) == []
    assert revocations.is_revoked({"iss": "Paris", "iat": 1.0, "jti": "Paris-1"})


def test_synced_age_counts_from_the_last_catch_up() -> None:
    now = [5.0]
    revocations = RevocationList(monotonic=lambda: now[0])
    assert revocations.synced_age() is None
    revocations.note_synced()
    now[0] = 12.5
    assert revocations.synced_age() == 7.5


def test_an_empty_list_revokes_nothing() -> None:
    assert not RevocationList().is_revoked({"iss": "Here", "iat": 0.0, "user": {"id": "u"}})
