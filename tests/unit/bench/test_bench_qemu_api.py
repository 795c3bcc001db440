"""bench qemu_api's arithmetic and table, on made-up boots (the benchmark itself needs
root, QEMU and minutes)."""

from __future__ import annotations

from typing import Any

from bench.qemu_api import MILESTONES, PHASES, network_summary, render, summary


def boot(base: float, *, api: bool) -> dict[str, Any]:
    times = dict(zip(MILESTONES, (0.0, 3.0, 5.0, 7.0), strict=True))
    out: dict[str, Any] = {k: v + base for k, v in times.items()}
    if api:
        out.update({k: 0.01 * (i + 1) for i, k in enumerate(PHASES)}, server_id="s")
    return out


def test_overhead_is_the_median_of_the_pairs_and_judged_on_both_bounds() -> None:
    anchor = [boot(0.0, api=False) for _ in range(3)]
    slow = summary(anchor, [boot(0.2, api=True) for _ in range(3)])
    assert slow["first_line"]["overhead_ms"] == 200
    assert slow["first_line"]["verdict"] == "MISS"  # within 10 % (1.07×) but not within 150 ms
    fast = summary(anchor, [boot(0.05, api=True) for _ in range(3)])
    assert fast["first_line"]["verdict"] == "PASS" and fast["marker"]["verdict"] == "PASS"
    assert fast["phases_median_ms"]["command_taken"] == 30


def test_the_table_renders_every_part() -> None:
    results: dict[str, Any] = {
        "accel": "tcg",
        "accel_reason": "probe",
        "settings": {"starts": 2, "ram_mb": 128, "console_poll_s": 0.01},
        "console_call": {
            "median_ms": 40.0,
            "best_ms": 20.0,
            "worst_ms": 80.0,
            "site_and_agent_cpu_ms_per_call": 20.0,
        },
    }
    api = [boot(0.1, api=True) for _ in range(2)]
    for mode in ("disk", "kernel"):
        results[mode] = summary([boot(0.0, api=False) for _ in range(2)], api)
        results[mode]["first_boot"] = {k: 0.5 for k in (*MILESTONES, *PHASES)}
    results["network"] = network_summary([boot(0.3, api=True) for _ in range(3)], api)
    table = render(results)
    assert "first console line" in table and "on a network" in table
    assert "os-getConsoleOutput" in table
