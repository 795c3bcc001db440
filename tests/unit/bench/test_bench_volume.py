"""bench volume's parsing, arithmetic and table on made-up rounds, and its I/O program
on a small file (the benchmark itself needs root, QEMU and a minute)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
from bench.volume_io import (
    MIB,
    REGION,
    SUITE,
    GuestError,
    IoTest,
    attach_summary,
    build_volio,
    figures,
    guest_script,
    io_summary,
    parse_fields,
    parse_queue,
    parse_round,
    parse_volio,
)
from bench.volume_local import ATTACH_GOAL_S, render
from bench.volume_remote import (
    EXPORT_HOST,
    GOAL_TESTS,
    READ_AHEAD_KB,
    RELAY_SUITE,
    REMOTE_SUITE,
    Guest,
    link_copy,
    summarize,
)
from bench.volume_remote import render as render_remote

from edgefed.wan import LinkProfile, WanLink

SERIAL = "0123456789abcdef0123"


def result(total_ms: float, p50_us: float, *, bs: int = MIB, ops: int = 64) -> dict[str, int]:
    return {
        "bs": bs,
        "ops": ops,
        "bytes": bs * ops,
        "total_ns": int(total_ms * 1e6),
        "sync_ns": 0,
        "min_ns": int(p50_us * 500),
        "p50_ns": int(p50_us * 1000),
        "p90_ns": int(p50_us * 1500),
        "p99_ns": int(p50_us * 2000),
        "max_ns": int(p50_us * 3000),
        "mean_ns": int(p50_us * 1100),
    }


def suite_round(total_ms: float, p50_us: float) -> dict[str, dict[str, int]]:
    return {t.name: result(total_ms, p50_us, bs=t.bs, ops=t.ops or REGION // t.bs) for t in SUITE}


def test_fields_and_a_guest_round_are_parsed_from_console_noise() -> None:
    assert parse_fields("op=seqread bs=4096 noise total_ns=12") == {
        "op": "seqread",
        "bs": "4096",
        "total_ns": "12",
    }
    console = (
        "[   31.2] virtio_blk virtio3: [vdc] 2097152 512-byte logical blocks\r\n"
        "VOLBENCH seen round=2 dev=vdc uptime=31.52\r\n"
        "VOLIO round=1 test=seq-read op=seqread bs=1048576 ops=64 bytes=67108864 total_ns=9\r\n"
        "VOLIO round=2 test=seq-read op=seqread bs=1048576 ops=64 bytes=67108864 total_ns=5\r\n"
        "garbage VOLIO round=2 test=rand-read op=randread bs=4096 ops=10 bytes=40960 total_ns=7\n"
    )
    found = parse_round(console, 2)
    assert sorted(found) == ["rand-read", "seq-read"]
    assert found["seq-read"]["total_ns"] == 5 and found["rand-read"]["bs"] == 4096
    assert "op" not in found["seq-read"]  # only numbers
    with pytest.raises(GuestError, match="sync-write"):
        parse_round("VOLIO round=3 test=sync-write error=open errno=2\n", 3)


def test_a_host_line_with_an_error_raises() -> None:
    assert parse_volio("op=seqread bs=1 ops=1 bytes=1 total_ns=3\n")["total_ns"] == 3
    with pytest.raises(RuntimeError, match="errno=22"):
        parse_volio("error=usage errno=22\n")


def test_figures_count_the_final_sync_in_the_throughput() -> None:
    f = figures(result(500.0, 250.0))  # 64 MiB in 0.5 s
    assert f["mib_s"] == 128.0 and f["iops"] == 128.0
    assert f["p50_us"] == 250.0 and f["p99_us"] == 500.0 and f["total_s"] == 0.5


def test_ratios_are_the_medians_of_the_pairs() -> None:
    anchor = [suite_round(100.0, 10.0), suite_round(200.0, 10.0), suite_round(100.0, 20.0)]
    guest = [suite_round(400.0, 110.0), suite_round(400.0, 60.0), suite_round(400.0, 220.0)]
    out = io_summary(anchor, guest)
    seq = out["seq-write"]
    assert seq["throughput_ratio"] == 0.25  # pairs: 0.25, 0.5, 0.25
    assert seq["latency_ratio"] == 11.0  # pairs: 11, 6, 11
    assert seq["added_p50_us"] == 100.0  # pairs: 100, 50, 200
    assert seq["anchor"]["mib_s"] == 640.0 and seq["guest"]["mib_s"] == 160.0
    assert set(out) == {t.name for t in SUITE}


def test_attach_is_judged_on_the_median_seen_time() -> None:
    cycles = [
        {"attach_api": 0.1, "attach_guest_seen": 0.5},
        {"attach_api": 0.2, "attach_guest_seen": 1.5},
        {"attach_api": 0.1, "attach_guest_seen": 0.9},
    ]
    out = attach_summary(cycles, goal_s=1.0)
    assert out["attach_guest_seen"] == {"median_s": 0.9, "best_s": 0.5, "worst_s": 1.5}
    assert out["verdict"] == "PASS"
    assert attach_summary(cycles[1:2], goal_s=1.0)["verdict"] == "MISS"
    assert attach_summary([{"attach_api": 0.1}], goal_s=1.0)["verdict"] == "MISS"  # never seen


def test_the_guest_script_runs_each_test_on_the_serial_it_waits_for() -> None:
    script = guest_script(SERIAL, b"\x7fELF" + bytes(100)).decode()
    assert f'[ "$s" = "{SERIAL}" ]' in script
    for test in SUITE:
        assert f"test={test.name} $(/run/volio {test.op} /dev/$dev {REGION} {test.bs}" in script
    assert "direct,fsync" in script and "direct,dsync" in script
    with pytest.raises(ValueError):
        guest_script('x"; reboot; "', b"")
    if shutil.which("busybox"):
        subprocess.run(["busybox", "sh", "-n", "-c", script], check=True)


def test_a_test_line_names_the_side_flags_and_its_sync() -> None:
    test = IoTest("w", "randwrite", 4096, 10, "dsync", "label")
    assert test.argv("v", "/f", "direct")[-1] == "direct,dsync"
    assert test.argv("v", "/f", "")[-1] == "dsync"
    assert IoTest("r", "seqread", MIB, 0, "", "l").argv("v", "/f", "", seed=7)[-2:] == ["7", "-"]
    queued = IoTest("q", "seqwrite", MIB, 0, "fsync", "l", qd=8)
    assert queued.argv("v", "/f", "direct")[-1] == "direct,fsync,qd8"
    buffered = IoTest("b", "seqwrite", MIB, 0, "fsync", "l", buffered=True)
    assert buffered.argv("v", "/f", "direct")[-1] == "fsync"  # the page cache, either side


def test_buffered_tests_drop_the_guests_caches_and_set_its_read_ahead() -> None:
    suite = (
        IoTest("d", "seqread", MIB, 0, "", "l", qd=4),
        IoTest("b", "seqread", 131072, 0, "", "l", buffered=True),
        IoTest("r", "seqread", 131072, 0, "", "l", buffered=True, read_ahead_kb=4096),
        IoTest("w", "seqwrite", MIB, 0, "fsync", "l", buffered=True),
    )
    lines = guest_script(SERIAL, b"", suite).decode().splitlines()
    drop = "    sync; echo 3 > /proc/sys/vm/drop_caches; blockdev --flushbufs /dev/$dev"
    at = {n: next(i for i, line in enumerate(lines) if f"test={n}" in line) for n in "dbrw"}
    assert lines[at["d"] - 1] != drop and "direct,qd4" in lines[at["d"]]
    assert lines[at["b"] - 2 : at["b"]] == [drop, "    echo $ra0 > $q/read_ahead_kb"]
    assert lines[at["r"] - 2 : at["r"]] == [drop, "    echo 4096 > $q/read_ahead_kb"]
    assert "ra_kb=$(cat $q/read_ahead_kb) $(/run/volio seqread" in lines[at["r"]]
    assert lines[at["w"] - 1] == drop and lines[at["w"]].endswith(' 0 1 fsync 2>&1)"')
    console = (
        "VOLBENCH queue round=1 read_ahead_kb=64\r\n"
        "VOLBENCH queue round=2 read_ahead_kb=128 max_sectors_kb=1280 scheduler=[none],mq\r\n"
    )
    assert parse_queue(console, 2) == {
        "read_ahead_kb": "128",
        "max_sectors_kb": "1280",
        "scheduler": "[none],mq",
    }
    assert parse_queue(console, 3) == {}


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_volio_runs_every_pattern_on_a_file(tmp_path: Path) -> None:
    volio = build_volio(tmp_path)
    assert volio.stat().st_size < 16 * 1024  # it travels in a guest's user data
    data = tmp_path / "vol.raw"
    with open(data, "wb") as f:
        f.truncate(4 * MIB)

    def run(*args: str) -> str:
        return subprocess.run([str(volio), *args], capture_output=True, text=True).stdout

    for op, bs, ops, flags in (
        ("seqwrite", MIB, 0, "fsync"),
        ("seqread", MIB, 0, "-"),
        ("randwrite", 4096, 50, "dsync"),
        ("randread", 4096, 50, "-"),
    ):
        out = parse_volio(run(op, str(data), str(4 * MIB), str(bs), str(ops), "1", flags))
        count = ops or 4
        assert out["ops"] == count and out["bytes"] == count * bs
        assert out["min_ns"] <= out["p50_ns"] <= out["p99_ns"] <= out["max_ns"] <= out["total_ns"]
    assert data.stat().st_size == 4 * MIB  # written in place, never truncated
    assert data.read_bytes()[:16] != bytes(16)
    assert run("seqread", str(tmp_path / "none"), "4096", "4096", "0", "1", "-").startswith(
        "error=open errno=2"
    )
    assert run("bogus", str(data), "4096", "4096", "0", "1", "-").startswith("error=op")
    big = tmp_path / "big.raw"  # blocks up to 8 MiB (the remote mode's context rows)
    with open(big, "wb") as f:
        f.truncate(8 * MIB)
    out = parse_volio(run("seqwrite", str(big), str(8 * MIB), str(8 * MIB), "0", "1", "fsync"))
    assert out["ops"] == 1 and out["bytes"] == 8 * MIB and out["qd"] == 1
    assert run("seqread", str(big), str(16 * MIB), str(16 * MIB), "0", "1", "-").startswith(
        "error=size"
    )
    for op, bs, ops, flags in (  # several in flight (Linux AIO), 8 MiB of buffers at most
        ("seqwrite", MIB, 0, "fsync,qd4"),
        ("seqread", MIB, 0, "qd8"),
        ("randread", 4096, 50, "qd8"),
        ("seqread", 4096, 0, "qd64"),
    ):
        out = parse_volio(run(op, str(big), str(8 * MIB), str(bs), str(ops), "1", flags))
        count = ops or 8 * MIB // bs
        assert out["ops"] == count and out["bytes"] == count * bs
        assert out["qd"] == int(flags.rsplit("qd", 1)[1])
        assert out["min_ns"] <= out["p50_ns"] <= out["max_ns"] <= out["total_ns"]
    for flags in ("qd9", "qd65"):  # 9 MiB of buffers; more than 64 in flight
        assert run("seqread", str(big), str(8 * MIB), str(MIB), "0", "1", flags).startswith(
            "error=size"
        )


def test_the_table_renders_every_part() -> None:
    anchor = [suite_round(100.0, 10.0)]
    guest = [suite_round(400.0, 110.0)]
    cycle = {
        "attach_api": 0.07,
        "attach_command_queued": 0.03,
        "attach_command_taken": 0.031,
        "attach_command_answered": 0.05,
        "attach_guest_kernel": 0.37,
        "attach_guest_seen": 0.4,
        "detach_api": 0.36,
        "detach_command_taken": 0.007,
        "detach_command_answered": 0.35,
        "detach_guest_gone": 0.06,
    }
    direct = io_summary(anchor, guest)
    local: dict[str, Any] = {
        "attach": attach_summary([cycle], ATTACH_GOAL_S),
        "io": io_summary(anchor, guest),
        "host_direct": {name: side["anchor"] for name, side in direct.items()},
        "idle_guest_qemu_cpu_share": 0.01,
        "volume_gb": 1,
        "region_mib": 64,
        "rounds_count": 1,
    }
    table = render(local)
    assert "PASS" in table and "400 ms" in table
    for test in SUITE:
        assert test.label in table


def remote_round(total_ms: float, p50_us: float) -> dict[str, dict[str, int]]:
    return {
        t.name: result(total_ms, p50_us, bs=t.bs, ops=t.ops or REGION // t.bs) for t in REMOTE_SUITE
    }


def remote_guest(suite: tuple[IoTest, ...], guest_ms: float, relayed: bool) -> Guest:
    cycle = {"attach_api": 0.6, "attach_command_queued": 0.3, "attach_guest_seen": 1.1}
    guest = Guest("s", Path("console.log"), suite, relayed)
    for _ in range(3):
        guest.rounds.append(
            {t.name: result(guest_ms, 55_000.0, bs=t.bs, ops=t.ops or REGION // t.bs)
             for t in suite}
        )  # fmt: skip
        guest.cycles.append(cycle)
        guest.wire.append({"port": 20100, "up": 70 * MIB, "down": 70 * MIB})
        guest.agent.append({"cpu_s": 1.4 if relayed else 0.1, "span_s": 100.0})
        guest.queue.append({"read_ahead_kb": "128", "mem_available_kb": "90000"})
    return guest


@pytest.mark.parametrize(("guest_ms", "verdict"), [(120.0, "PASS"), (160.0, "MISS")])
def test_the_remote_mode_judges_sequential_io_against_the_links_copy(
    guest_ms: float, verdict: str
) -> None:
    anchors = [remote_round(100.0, 50_000.0)] * 3
    plain = remote_guest(REMOTE_SUITE, guest_ms, relayed=False)
    nic = remote_guest(RELAY_SUITE, guest_ms * 1.25, relayed=True)
    out = summarize(anchors, plain, nic)
    assert set(out["goal"]["ratios"]) == set(GOAL_TESTS) == {"seq-write-qd8", "seq-read-qd8"}
    assert out["goal"]["ratios"]["seq-read-qd8"] == round(100.0 / guest_ms, 4)
    assert out["goal"]["verdict"] == verdict and out["attach"]["verdict"] == "—"
    assert out["goal"]["one_at_a_time"]["ratios"]["seq-read"] == round(100.0 / guest_ms, 4)
    assert out["link"]["copy_down_mib_s"] == round(64 / 0.1, 2)  # every test: 64 MiB a round
    relay = out["relay"]
    assert relay["against_direct"]["seq-read"]["throughput_ratio"] == 0.8
    # the agent: 1.4 s over 100 s relaying 140 MiB, 0.1 s over 100 s without: 1.3 s / 140 MiB
    assert relay["agent_cpu"]["relay_cpu_us_per_mib"] == round(1.3 / 140 * 1e6, 1)
    table = render_remote(out)
    assert f": {verdict}" in table and "1,100 ms" in table and "+5.0 ms" in table
    assert f"({READ_AHEAD_KB} KiB)" in table and "read-ahead 128 KiB" in table
    for test in REMOTE_SUITE:
        assert test.label in table


def test_the_remote_suite_is_the_local_one_with_fewer_random_operations() -> None:
    names = [t.name for t in REMOTE_SUITE]
    assert names[: len(SUITE)] == [t.name for t in SUITE]
    assert all(t.ops <= 200 for t in REMOTE_SUITE)
    assert {t.qd for t in REMOTE_SUITE} == {1, 4, 8}
    assert [t.name for t in REMOTE_SUITE if t.buffered] == ["buf-write", "buf-read", "buf-read-ra"]
    assert {t.name for t in RELAY_SUITE} <= set(names)
    script = guest_script(SERIAL, b"", REMOTE_SUITE).decode()
    assert f"seqread /dev/$dev {REGION} {8 * MIB} 0 1 direct" in script
    assert f"seqread /dev/$dev {REGION} {MIB} 0 1 direct,qd8" in script


def test_the_remote_anchor_copies_through_the_link_in_front_of_a_port() -> None:
    """The anchor's own server takes the port (an export's, free again) on 127.0.0.1,
    its client goes through the link on 127.0.0.2 at the same port."""
    rate = 8 * MIB
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    profile = LinkProfile(rtt_ms=20.0, bandwidth=rate)
    link = WanLink(("127.0.0.1", port), profile=profile, listen_host=EXPORT_HOST,
                   listen_port=port)  # fmt: skip
    with link:
        out = link_copy(port, size=2 * MIB, exchanges=3)
        stats = link.stats
    assert set(out) == {"copy-up", "copy-down", "exchange-up", "exchange-down"}
    for name in ("copy-up", "copy-down"):
        seconds = out[name]["total_ns"] / 1e9
        assert out[name]["bytes"] == 2 * MIB and out[name]["ops"] == 2
        assert 2 * MIB / rate * 0.9 + 0.019 <= seconds < 2.0  # the cap and one RTT
    assert out["exchange-up"]["ops"] == 3 and out["exchange-up"]["p50_ns"] >= 19_000_000
    assert stats.bytes_up >= 2 * MIB + 3 * 4096 and stats.bytes_down >= 2 * MIB + 3 * 4096
