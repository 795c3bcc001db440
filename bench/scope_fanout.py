"""Scope fan-out (issue 3): ``&`` over N sites against the same calls one after another.

OpenStackoïd evaluated ``A&B`` sequentially. Here N real site processes sit behind WAN
links with 50 ms RTT; one origin site receives ``GET /image/v2/images`` with
``X-Scope: {image: S1&…&SN}`` and fans out. The anchor, measured in the same run, is
the same N calls made one site after another (``{image: Si}``, one at a time). Goal:
the fan-out within 1.5 × one RTT of the slowest site.

Also the router's own cost: a call to site B directly against the same call sent to
site A with ``{image: B}`` (one hop, loopback, no WAN emulator on either path). Goal: under 1 ms
added at p50.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench.fleet_status import start_fleet, stop_fleet, wait_registered
from edgefed.testkit.fleet_process import ProcessFleet, password_token
from edgefed.testkit.process import LowPorts

RTT_MS = 50.0
SIZES = (2, 8, 32)
ROUNDS = 21  # fan-outs per figure (its median): a median of 7 moved too much between runs
HOP_SAMPLES = 400


def _timed(client: httpx.Client, url: str, headers: dict[str, str]) -> float:
    started = time.perf_counter()
    r = client.get(url, headers=headers)
    elapsed = time.perf_counter() - started
    if r.status_code != 200:
        raise RuntimeError(f"{url} answered {r.status_code}: {r.text[:200]}")
    return elapsed


def _fanout(size: int, root: Path) -> dict[str, Any]:
    names = ["Origin"] + [f"S{i:02d}" for i in range(1, size + 1)]
    fleet = ProcessFleet(
        root=root / f"n{size}",
        names=names,
        rtt_ms=RTT_MS,
        gossip_interval=5.0,
        pick_port=LowPorts(),
    )
    fleet.start()
    try:
        origin = fleet["Origin"]
        headers = {"X-Auth-Token": password_token(origin.url)}
        url = f"{origin.url}/image/v2/images"
        targets = names[1:]
        everything = {**headers, "X-Scope": "{image: " + "&".join(targets) + "}"}
        with httpx.Client(timeout=60) as client:
            # Warm the origin's connections to every site.
            _timed(client, url, everything)
            fan = [_timed(client, url, everything) for _ in range(ROUNDS)]
            seq = []
            for _ in range(3):
                total = 0.0
                for site in targets:
                    total += _timed(client, url, {**headers, "X-Scope": f"{{image: {site}}}"})
                seq.append(total)
            single = [
                _timed(client, url, {**headers, "X-Scope": f"{{image: {targets[-1]}}}"})
                for _ in range(ROUNDS)
            ]
            # The same fan-out with the links' delay taken away: what is left is the
            # sites' and the origin's processing, on this machine's cores.
            for link in fleet.wan.links().values():
                link.update(rtt_ms=0.0)
            _timed(client, url, everything)
            no_rtt = [_timed(client, url, everything) for _ in range(ROUNDS)]
        fan_s, seq_s, one_s, bare_s = (
            statistics.median(fan),
            statistics.median(seq),
            statistics.median(single),
            statistics.median(no_rtt),
        )
        return {
            "sites": size,
            "fanout_ms": fan_s * 1000,
            "sequential_ms": seq_s * 1000,
            "one_site_ms": one_s * 1000,
            "fanout_over_one_site": fan_s / one_s,
            "fanout_at_zero_rtt_ms": bare_s * 1000,
            "speedup": seq_s / fan_s,
            "fanout_over_rtt": fan_s * 1000 / RTT_MS,
            "goal_met": fan_s * 1000 <= 1.5 * RTT_MS,
        }
    finally:
        fleet.stop()


def _router_overhead(root: Path) -> dict[str, Any]:
    # Two sites talking directly on loopback: no WAN emulator on the routed path (its
    # userspace proxy would be counted as the router's cost; the direct call has none).
    a, b = start_fleet(root / "hop", 2)
    try:
        with httpx.Client(base_url=a.url, headers={"X-Auth-Token": password_token(a.url)}) as c:
            wait_registered(c, 2)
        headers = {"X-Auth-Token": password_token(a.url)}
        via_a = {**headers, "X-Scope": f"{{image: {b.name}}}"}
        with httpx.Client(timeout=60) as client:
            for _ in range(50):
                _timed(client, f"{b.url}/image/v2/images", headers)
                _timed(client, f"{a.url}/image/v2/images", via_a)
            direct = []
            routed = []
            for _ in range(HOP_SAMPLES):
                direct.append(_timed(client, f"{b.url}/image/v2/images", headers))
                routed.append(_timed(client, f"{a.url}/image/v2/images", via_a))
        d50, r50 = statistics.median(direct), statistics.median(routed)
        return {
            "direct_p50_ms": d50 * 1000,
            "routed_p50_ms": r50 * 1000,
            "added_p50_ms": (r50 - d50) * 1000,
            "goal_met": (r50 - d50) * 1000 < 1.0,
        }
    finally:
        stop_fleet([a, b])


def run(settings: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="edgefed-bench-fanout-") as tmp:
        root = Path(tmp)
        return {
            "rtt_ms": RTT_MS,
            "fanout": [_fanout(n, root) for n in SIZES],
            "router": _router_overhead(root),
        }


def render(results: dict[str, Any]) -> str:
    lines = [
        f"scope fan-out over WAN links of {results['rtt_ms']:.0f} ms RTT "
        "(anchor: the same calls one site after another)",
        f"{'sites':>6} {'fan-out ms':>11} {'sequential ms':>14} {'speedup':>8} "
        f"{'fan-out/RTT':>12}  goal <= 1.5 x RTT  {'one site ms':>11} {'at 0 RTT ms':>11}",
    ]
    for row in results["fanout"]:
        lines.append(
            f"{row['sites']:>6} {row['fanout_ms']:>11.1f} {row['sequential_ms']:>14.1f} "
            f"{row['speedup']:>7.1f}x {row['fanout_over_rtt']:>12.2f}  "
            f"{'PASS' if row['goal_met'] else 'MISS':<17} {row['one_site_ms']:>11.1f} "
            f"{row.get('fanout_at_zero_rtt_ms', float('nan')):>11.1f}"
        )
    lines.append(
        "(one site: the same request to the last site alone, through the router; at 0 RTT: "
        "the fan-out with the links' delay removed, i.e. the fleet's processing on this "
        "machine's cores, every site included)"
    )
    r = results["router"]
    lines.append(
        f"router one hop on loopback: direct p50 {r['direct_p50_ms']:.2f} ms, via router p50 "
        f"{r['routed_p50_ms']:.2f} ms, added {r['added_p50_ms']:.2f} ms (goal < 1 ms: "
        f"{'PASS' if r['goal_met'] else 'MISS'})"
    )
    return "\n".join(lines)
