"""The WAN emulator's parts without traffic: the bandwidth bucket's arithmetic, due times
on a seeded link, profiles applied to a running shaper, and the controls' bookkeeping
(which cut wins, which links exist, a WAN started again)."""

from __future__ import annotations

import resource

import pytest

from edgefed.wan import AsyncWanLink, LinkProfile, Wan, raise_open_files_limit
from edgefed.wan.engine import CHUNK, Shaper, TokenBucket

TARGET = ("127.0.0.1", 9)  # nothing is sent: no connection is ever made


def test_the_bucket_lets_a_burst_through_then_makes_senders_wait_in_turn() -> None:
    bucket = TokenBucket(rate=1000.0, burst=500.0)
    assert bucket.charge(500, now=10.0) == 0.0  # the burst
    assert bucket.charge(250, now=10.0) == pytest.approx(0.25)  # 250 bytes at 1000 B/s
    assert bucket.charge(250, now=10.0) == pytest.approx(0.5)  # behind the previous one
    assert bucket.charge(0, now=11.0) == 0.0  # a second later the debt is paid
    assert bucket.tokens == pytest.approx(500.0)  # and the bucket full again, not more


def test_the_bucket_never_saves_more_than_its_burst() -> None:
    bucket = TokenBucket(rate=100.0, burst=50.0)
    bucket.charge(0, now=0.0)
    assert bucket.charge(60, now=1000.0) == pytest.approx(0.1)


def test_due_times_add_half_the_rtt_and_a_seeded_loss_repeats() -> None:
    shaper = Shaper(TARGET, LinkProfile(rtt_ms=100.0), seed=1)
    assert shaper.due(5.0) == pytest.approx(5.05)
    lossy = LinkProfile(rtt_ms=100.0, loss=0.5, rto_ms=200.0)
    runs = []
    for _ in range(2):
        shaper = Shaper(TARGET, lossy, seed=7)
        runs.append([round(shaper.due(0.0), 6) for _ in range(50)])
    assert runs[0] == runs[1]  # the same seed, the same losses
    assert set(runs[0]) == {0.05, 0.25}  # on time, or one RTO late


def test_bandwidth_buckets_follow_the_profile() -> None:
    shaper = Shaper(TARGET, LinkProfile(), seed=None)
    assert shaper.buckets == {}
    shaper.set_profile(LinkProfile(bandwidth=1e6))
    assert set(shaper.buckets) == {"up", "down"}
    up = shaper.buckets["up"]
    assert (up.rate, up.burst) == (1e6, float(CHUNK))
    shaper.set_profile(LinkProfile(bandwidth=2e6))
    assert shaper.buckets["up"] is up and up.rate == 2e6  # the debt owed is kept
    shaper.set_profile(LinkProfile())
    assert shaper.buckets == {}


async def test_a_link_is_controlled_once_started_and_cut_only_two_ways() -> None:
    link = AsyncWanLink(TARGET, profile=LinkProfile(rtt_ms=10.0), name="to-nowhere")
    with pytest.raises(AssertionError, match="start the link first"):
        link.cut()
    async with link:
        assert link.url == f"http://127.0.0.1:{link.port}" and link.port != 0
        with pytest.raises(ValueError, match="'stall' or 'reset'"):
            link.cut(mode="drop")  # type: ignore[arg-type]
        link.update(rtt_ms=80.0, loss=0.1)
        assert link.profile == LinkProfile(rtt_ms=80.0, loss=0.1)
        link.cut(mode="reset")
        assert link.cut_mode == "reset"
        link.heal()
        assert link.cut_mode is None
        assert link.stats.connections == 0


def test_the_wan_keeps_one_link_per_pair_and_names_a_missing_one() -> None:
    with Wan(seed=3) as wan:
        link = wan.add_link(client="Berlin", server="Denver", target=TARGET)
        shared = wan.add_link(server="Denver", target=TARGET)
        with pytest.raises(ValueError, match="a link Berlin -> Denver exists already"):
            wan.add_link(client="Berlin", server="Denver", target=TARGET)
        with pytest.raises(KeyError, match=r"no link \* -> Paris"):
            wan.link(server="Paris")
        links = wan.links()
        assert links == {("Berlin", "Denver"): link, (None, "Denver"): shared}
        links.clear()  # a copy
        assert len(wan.links()) == 2
        assert (link.name, shared.name) == ("Berlin->Denver", "*->Denver")


def test_a_reset_cut_wins_over_a_stall_and_healing_one_keeps_the_other() -> None:
    with Wan() as wan:
        link = wan.add_link(client="Berlin", server="Denver", target=TARGET)
        wan.cut_link(client="Berlin", server="Denver")
        wan.cut_site("Denver", mode="reset")
        assert link.cut_mode == "reset"
        wan.heal_site("Denver")
        assert link.cut_mode == "stall"  # its own cut remains
        wan.heal_link(client="Berlin", server="Denver")
        assert link.cut_mode is None
        # A link added while its site is cut starts cut.
        wan.cut_site("Paris")
        late = wan.add_link(client="Paris", server="Rome", target=TARGET)
        assert late.cut_mode == "stall"
        # Cutting or healing a link that does not exist changes nothing.
        wan.cut_link(server="Atlantis")
        wan.heal_link(server="Atlantis")


def test_a_stopped_wan_starts_again_with_no_links() -> None:
    wan = Wan()
    wan.add_link(server="Denver", target=TARGET)  # starts it
    wan.stop()
    assert wan.links() == {}
    with wan:
        again = wan.add_link(server="Denver", target=TARGET)
        assert wan.link(server="Denver") is again
    wan.stop()  # twice is fine


def test_the_open_files_limit_is_raised_toward_the_wanted_value_and_never_lowered() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert raise_open_files_limit(1) == soft  # already above: untouched
    reached = raise_open_files_limit(min(hard, soft + 1) if hard > soft else soft)
    assert reached >= soft
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= soft
