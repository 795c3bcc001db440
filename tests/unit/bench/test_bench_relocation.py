"""bench relocation's pure half on a made-up move: the guest's script, its lines, the
phases and chunks from what the bench polled, the ratios and the table (the benchmark
itself needs root, QEMU, two sites and a few minutes)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from bench.relocation_figures import (
    DOWNTIME_GOAL,
    MIB,
    NOT_THERE_YET,
    TOTAL_GOAL,
    Timeline,
    chunk_figures,
    compare,
    parse_marker,
    phase_spans,
    render,
    summarize,
    user_data,
)

BANDWIDTH = 100e6 / 8
DISK = 212 * MIB + MIB // 2


def a_move(*, attaching: bool = True) -> Timeline:
    """Stopped at 2.5 s, exported by 10, 53 chunks of 4 MiB and one of 0.5 MiB from 10.2
    to 29.0, ACTIVE at Paris at 33.0."""
    tl = Timeline()
    tl.see_phase("stopping", 0.1)
    tl.see_bytes(0, 0.1)
    tl.see_phase("stopping", 0.5)  # seen again: the first sight counts
    tl.see_phase("exporting", 2.5)
    if attaching:
        tl.see_phase("attaching", 10.0)
    tl.see_phase("naming", 10.05)
    tl.see_phase("sending", 10.2)
    t = 10.2
    for n in range(1, 54):
        t += 0.35
        tl.see_bytes(n * 4 * MIB, t)
        tl.see_bytes(n * 4 * MIB, t + 0.01)  # polled again, unchanged
    tl.see_bytes(DISK, 29.0)
    tl.see_phase("committing", 29.0)
    tl.see_phase("starting", 31.0)
    tl.dest_active = 33.0
    tl.see_phase("finishing", 33.5)
    tl.see_phase("done", 34.0)
    tl.answered = 0.2
    tl.source_stopped = 2.4
    tl.dest_first_line = 33.3
    tl.dest_marker = 40.0
    return tl


def a_mild_move() -> Timeline:
    """Frozen and exported by 0.5 s, the disk sent from 0.6 to 19.6 while the guest
    runs, stopped by 22.1, its changes sent by 22.9, ACTIVE at Paris at 25.5."""
    tl = Timeline()
    tl.see_phase("snapshotting", 0.1)
    tl.see_phase("attaching", 0.5)
    tl.see_phase("naming", 0.55)
    tl.see_phase("sending-base", 0.6)
    tl.see_bytes(DISK, 19.6)
    tl.see_phase("stopping", 19.6)
    tl.source_stopped = 22.0
    tl.see_phase("exporting-delta", 22.1)
    tl.see_phase("naming-delta", 22.3)
    tl.see_phase("sending-delta", 22.4)
    tl.see_bytes(DISK + MIB, 22.9)
    tl.see_phase("committing", 22.9)
    tl.see_phase("starting", 24.5)
    tl.dest_active = 25.5
    tl.see_phase("done", 26.0)
    tl.dest_first_line, tl.dest_marker = 25.8, 33.0
    return tl


def test_the_user_data_writes_once_then_reads_back() -> None:
    script = user_data(200, 64).decode()
    assert script.startswith("#!/bin/sh\n")
    assert "of=/dev/vda bs=1048576 seek=64 count=200 conv=fsync" in script
    assert "skip=64 count=1" in script  # the written data's first MiB, read back
    assert 'if [ -f "$M" ]' in script and "M=/boot/relocbench" in script
    shell = shutil.which("sh")
    if shell is None:
        pytest.skip("no sh")
    subprocess.run([shell, "-n", "-c", script], check=True)  # it parses


def test_the_guest_lines_are_parsed() -> None:
    console = (
        "EDGEFED-GUEST user-data run t=3.1\r\n"
        "RELOCBENCH wrote 0123456789abcdef mib=200 from=3.2 t=21.7\r\n"
        "EDGEFED-GUEST user-data exit=0 t=21.8\n"
    )
    assert parse_marker(console) == {
        "kind": "wrote", "sha": "0123456789abcdef", "mib": "200", "from": "3.2", "t": "21.7",
    }  # fmt: skip
    moved = console + "RELOCBENCH found 0123456789abcdef read=0123456789abcdef t=4.0\n"
    assert parse_marker(moved)["kind"] == "found"
    assert parse_marker(moved)["read"] == "0123456789abcdef"
    assert parse_marker("RELOCBENCH\nnothing here\n") == {}


def test_phases_from_the_journal_and_the_destination() -> None:
    spans = phase_spans(a_move())
    assert spans["stop"] == 2.5
    assert spans["export"] == 7.5  # to attaching (the volumes' step, none here)
    assert spans["attach_naming"] == 0.2
    assert spans["transfer"] == 18.8
    assert spans["commit"] == 2.0 and spans["start"] == 2.0 and spans["commit_start"] == 4.0
    assert spans["finish"] == 1.0
    before_volumes = phase_spans(a_move(attaching=False))  # a source without that phase
    assert before_volumes["export"] == 7.55 and before_volumes["attach_naming"] == 0.15
    assert phase_spans(Timeline())["transfer"] is None
    mild = phase_spans(a_mild_move(), "mild")
    assert mild["freeze"] == 0.5 and mild["transfer"] == 19.0 and mild["stop"] == 2.5
    assert mild["delta_export"] == 0.2 and mild["delta_transfer"] == 0.6
    assert mild["commit"] == 1.6 and mild["start"] == 1.0 and mild["finish"] == 0.5
    # the disk's chunks end where the guest is stopped: its changes' bytes come after
    steady = a_mild_move()
    steady.progress[:0] = [(1.0 + 2 * k, k * MIB) for k in range(1, 10)]  # 2 s apart
    assert chunk_figures(steady, 19.0, DISK, 4 * MIB, BANDWIDTH)["longest_still_s"] == 2.4


def test_chunks_from_the_transfer_and_the_journals_bytes() -> None:
    tl = a_move()
    chunks = chunk_figures(tl, 18.8, DISK, 4 * MIB, BANDWIDTH)
    assert chunks["count"] == 54  # 53 of 4 MiB and the last 0.5 MiB
    assert chunks["mean_s"] == round(18.8 / 54, 4)
    assert chunks["added_mean_s"] == round(18.8 / 54 - 4 * MIB / BANDWIDTH, 4)
    assert chunks["longest_still_s"] == pytest.approx(0.35)  # the last, 0.5 MiB: 0.25 s
    assert "mean_s" not in chunk_figures(tl, None, DISK, 4 * MIB, BANDWIDTH)
    resumed = Timeline(phases={"sending": 4.5}, progress=[(0.1, 8 * MIB), (5.0, 12 * MIB)])
    assert chunk_figures(resumed, 1.0, 12 * MIB, 4 * MIB, BANDWIDTH)["longest_still_s"] == 0.5


def test_the_ratios_against_the_copy_and_the_table() -> None:
    tl = a_move()
    results = summarize(
        tl,
        disk_size=DISK,
        bytes_done=DISK,
        wire={"up": DISK + 60_000, "down": 40_000},
        copies_s=[18.0, 18.4],
        bandwidth=BANDWIDTH,
        rtt_ms=50.0,
        chunk_bytes=4 * MIB,
    )
    assert results["total_s"] == 33.0
    assert results["anchor"]["copy_s"] == 18.2
    assert results["ratio_total"] == round(33.0 / 18.2, 3)
    assert results["ratio_transfer"] == round(18.8 / 18.2, 3)
    assert results["verdict"] == "MISS" and results["goal_total"] == TOTAL_GOAL
    assert results["downtime_s"] == {
        "to_active": 30.6, "shutdown": 2.3, "asked_to_active": 32.9, "to_first_line": 30.9,
        "to_user_data": 37.6,
    }  # fmt: skip
    assert results["chunks"]["link_time_s"] == round(4 * MIB / BANDWIDTH, 4)
    assert results["chunks"]["in_flight"] == 1
    quick = summarize(tl, disk_size=DISK, bytes_done=DISK, wire={"up": DISK, "down": 0},
                      copies_s=[30.0], bandwidth=BANDWIDTH, rtt_ms=50.0,
                      chunk_bytes=4 * MIB)  # fmt: skip
    assert quick["verdict"] == "PASS"  # 33 / 30 = 1.1

    mild = summarize(a_mild_move(), disk_size=DISK, bytes_done=DISK + MIB,
                     wire={"up": DISK + MIB, "down": 0}, copies_s=[18.0, 18.4],
                     copy_bytes=DISK * 2, bandwidth=BANDWIDTH, rtt_ms=50.0,
                     chunk_bytes=4 * MIB, mode="mild")  # fmt: skip
    assert mild["anchor"]["copy_s"] == 9.1  # the copy's time scaled to this disk
    assert mild["downtime_s"]["to_active"] == 3.5
    assert mild["downtime_s"]["asked_to_active"] == 5.9
    both = compare(results, mild)
    assert both["downtime_ratio"] == round(3.5 / 30.6, 3) and both["downtime_verdict"] == "MISS"
    assert both["downtime_goal"] == DOWNTIME_GOAL
    assert compare(results, mild | {"downtime_s": {**mild["downtime_s"], "to_active": 3.0}})[
        "downtime_verdict"] == "PASS"  # fmt: skip

    table = render({"cold": results | {"dest": "Paris"}, "mild": mild | {"dest": "Paris"},
                    "compare": both, "source": "Berlin", "dest": "Paris",
                    "used_mib": 200})  # fmt: skip
    assert "moved from Berlin to Paris" in table and "one cold, then one mild" in table
    assert "cold: total, from the action to the server ACTIVE at Paris: 33.00 s" in table
    assert "mild: total, from the action to the server ACTIVE at Paris: 25.50 s" in table
    assert "transfer 18.80 s" in table and "commit+start 4.00 s" in table
    assert "transfer, the guest running 19.00 s" in table
    assert f"total ÷ copy {results['ratio_total']}× (goal ≤ 1.2×: MISS)" in table
    assert "to ACTIVE at the destination: 30.60 s" in table
    assert "to ACTIVE at the destination: 3.50 s" in table
    assert "chunks: 54, 0.348 s each on average" in table
    assert f"mild downtime ÷ cold downtime {both['downtime_ratio']} (goal < 0.1: MISS)" in table
    assert NOT_THERE_YET in table
