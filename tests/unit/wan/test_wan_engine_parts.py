"""The WAN emulator's parts without traffic: the bandwidth bucket's arithmetic, due times
on a seeded link, profiles applied to a running shaper, flow control of one pipe between
fake sockets, and the controls' bookkeeping (which cut wins, which links exist, a WAN
started again)."""

from __future__ import annotations

import asyncio
import resource

import pytest

from edgefed.testkit.wait import eventually
from edgefed.wan import AsyncWanLink, LinkProfile, Wan, raise_open_files_limit
from edgefed.wan.engine import CHUNK, QUEUE_BYTES, Connection, Shaper, Side, TokenBucket

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


class FakeTransport:
    """A socket of a connection: counts what is written, records pauses of its reading."""

    def __init__(self) -> None:
        self.written = 0
        self.paused = False
        self.resumed_with: list[int] = []  # bytes still queued in the pipe at each resume
        self.pipe_queued = lambda: 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False
        self.resumed_with.append(self.pipe_queued())

    def close(self) -> None:
        pass


async def test_a_pipe_the_bandwidth_holds_reads_again_once_half_drained() -> None:
    """Reading resumes when half the bound is left, while the bucket still paces the
    rest: not once the pipe drained, which idled the link for each new chunk's delay."""
    shaper = Shaper(TARGET, LinkProfile(bandwidth=64 * 1024 * 1024, handshake=False), seed=None)
    shaper.loop = asyncio.get_running_loop()
    conn = Connection(shaper)
    client, target = FakeTransport(), FakeTransport()
    client.pipe_queued = lambda: conn.up.queued
    conn.client_side.transport = client  # type: ignore[assignment]
    target_side = Side(conn, conn.down, sink_of=conn.up)
    target_side.transport = target  # type: ignore[assignment]
    conn.target_side = conn.up.sink = conn.down.source = target_side
    total = QUEUE_BYTES + QUEUE_BYTES // 2
    for _ in range(total // (64 * 1024)):
        conn.up.feed(bytes(64 * 1024))
    assert client.paused  # beyond the bound: the source is paused

    async def drained() -> bool:
        return target.written == total

    await eventually(drained, within=5.0, what="the pipe drained")
    assert client.resumed_with and client.resumed_with[0] >= QUEUE_BYTES // 4
    conn.close()


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
