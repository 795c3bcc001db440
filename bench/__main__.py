"""``python -m bench [identity] [footprint] [--duration S] [--rounds N] [--connections N]``.

Runs every benchmark, or the ones named, prints each one's table and writes its
figures to ``bench/out/<name>.json``. A benchmark is never a pass/fail test: it
prints figures and ratios against the anchor measured in the same run, with the
goal and PASS/MISS next to each ratio. The exit code is 0 unless a benchmark could
not run at all.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import (
    fleet_status,
    http_client,
    identity,
    live_migration,
    qemu_api,
    qemu_boot,
    relocation,
    revocation,
    scope_fanout,
    site_footprint,
    sync_propagation,
    tls_cost,
    volume,
)

OUT_DIR = Path(__file__).resolve().parent / "out"

Runner = Callable[[dict[str, Any]], dict[str, Any]]
Renderer = Callable[[dict[str, Any]], str]
BENCHMARKS: dict[str, tuple[Runner, Renderer]] = {
    "identity": (identity.run, identity.render),
    "footprint": (site_footprint.run, site_footprint.render),
    "fanout": (scope_fanout.run, scope_fanout.render),
    "sync": (sync_propagation.run, sync_propagation.render),
    "fleet_status": (fleet_status.run, fleet_status.render),
    "tls": (tls_cost.run, tls_cost.render),
    "revocation": (revocation.run, revocation.render),
    "http_client": (http_client.run, http_client.render),
    "qemu_boot": (qemu_boot.run, qemu_boot.render),
    "qemu_api": (qemu_api.run, qemu_api.render),
    "volume": (volume.run, volume.render),
    "relocation": (relocation.run, relocation.render),
    "live_migration": (live_migration.run, live_migration.render),
}


def machine() -> dict[str, Any]:
    """Enough context to read the figures: cores and how busy the machine already was."""
    return {
        "cpus": os.cpu_count(),
        "loadavg_at_start": list(os.getloadavg()),
        "python": platform.python_version(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names",
        nargs="*",
        choices=[*BENCHMARKS, []],
        metavar="NAME",
        help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up first")
    parser.add_argument("--connections", type=int, default=16, help="concurrent connections")
    parser.add_argument(
        "--max-requests", type=int, default=2_000_000, help="hard cap on requests per measurement"
    )
    parser.add_argument("--starts", type=int, default=3, help="site starts for the median")
    parser.add_argument(
        "--rounds", type=int, default=2, help="identity: alternating rounds, the best is kept"
    )
    parser.add_argument(
        "--driver",
        choices=("fake", "qemu"),
        default="fake",
        help="footprint: the site's compute driver (qemu also runs the local host agent)",
    )
    parser.add_argument(
        "--mode",
        action="append",
        choices=list(volume.MODES),
        help="volume: only this mode (repeatable; default: every mode)",
    )
    args = parser.parse_args(argv)
    settings = {
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "max_requests": args.max_requests,
        "starts": args.starts,
        "rounds": args.rounds,
        "driver": args.driver,
        "mode": args.mode,
    }
    OUT_DIR.mkdir(exist_ok=True)
    failed = 0
    for name in args.names or list(BENCHMARKS):
        run, render = BENCHMARKS[name]
        context = machine()
        try:
            results = run(settings)
        except Exception as exc:  # a benchmark that cannot run is reported, the others go on
            print(f"bench {name}: could not run: {exc}", file=sys.stderr)
            failed += 1
            continue
        results["machine"] = context
        busy = context["loadavg_at_start"][0]
        if busy > 0.5:
            print(
                f"bench {name}: note: the machine was already busy (load average {busy:.1f});"
                " absolute figures are noisy, the ratios less so (phases alternate)"
            )
        path = OUT_DIR / f"{name}.json"
        path.write_text(json.dumps(results, indent=2) + "\n")
        print()
        print(render(results))
        shown = path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path
        print(f"(figures in {shown})")
        print()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
