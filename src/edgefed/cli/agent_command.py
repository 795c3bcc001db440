"""``edgefed host agent``: run the host agent on this machine.

Without ``--guests`` it enrolls the host and reports its heartbeat and hardware. With
``--guests`` it also runs the site's guests here: it takes commands from the site
over the command channel and runs them with QEMU, wiring the site's networks on this
host (a namespace, bridges, taps, dnsmasq, nftables: root is needed). The all-in-one
site (``edgefed site serve`` with the qemu driver) starts one of these for its own
machine. The one-time token comes from ``--enroll-token``, ``--enroll-token-file`` or
``EDGEFED_ENROLL_TOKEN``; an agent that enrolled before reuses its credential.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx

READY_PREFIX = "EDGEFED AGENT READY"


def _token(args: argparse.Namespace) -> str | None:
    if args.enroll_token:
        return str(args.enroll_token)
    if args.enroll_token_file is not None:
        try:
            return args.enroll_token_file.read_text().strip() or None
        except FileNotFoundError:
            return None
    return os.environ.get("EDGEFED_ENROLL_TOKEN") or None


def run_agent(args: argparse.Namespace) -> int:
    from edgefed.agent.runner import AgentConfig, AgentError, HostAgent

    logging.basicConfig(level=logging.INFO, format="%(asctime)s agent %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    config = AgentConfig(
        site_url=args.site,
        state_dir=args.state_dir,
        enroll_token=_token(args),
        hostname=args.hostname,
        mgmt_ip=args.mgmt_ip,
        interval_seconds=args.interval,
    )
    agent = HostAgent(config)
    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    if args.pid_file is not None:
        # Written whole or not at all: a watcher never reads a truncated file.
        partial = args.pid_file.with_name(args.pid_file.name + ".partial")
        partial.write_text(f"{os.getpid()}\n")
        os.replace(partial, args.pid_file)

    def ready(state: Any) -> None:
        print(f"{READY_PREFIX} host={state.hostname} id={state.host_id}", flush=True)

    try:
        if args.guests:
            # dnsmasq runs as nobody and must traverse the network state; the agent's own
            # secrets are written 0600 explicitly (agent/state.py), whatever the umask.
            os.umask(0o022)
            args.hostnet_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
            from edgefed.agent.channel import ChannelSettings
            from edgefed.agent.guest_host import GuestHostConfig, run_with_guests

            guests = GuestHostConfig(
                qemu_state_dir=args.qemu_state_dir or args.state_dir / "qemu",
                hostnet_dir=None if args.no_network else args.hostnet_dir,
                accel=args.accel,
                site_files=not args.no_site_files,
                channel=ChannelSettings(
                    poll_wait=args.poll_wait, network_interval=args.network_interval
                ),
            )
            run_with_guests(agent, guests, on_ready=ready)
        else:
            agent.run(on_ready=ready)
    except AgentError as exc:
        print(f"edgefed: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"edgefed: cannot reach the site: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("agent", help="run the host agent on this host")
    p.add_argument("--site", required=True, help="the site's URL")
    p.add_argument("--enroll-token", help="one-time enrollment token (or EDGEFED_ENROLL_TOKEN)")
    p.add_argument("--enroll-token-file", type=Path, help="a file holding the token")
    p.add_argument(
        "--state-dir", type=Path, default=Path("/var/lib/edgefed-agent"), help="agent state"
    )
    p.add_argument("--hostname", help="hostname to enroll as (default: this machine's)")
    p.add_argument("--mgmt-ip", help="management IP (static management networks only)")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between heartbeats")
    p.add_argument("--pid-file", type=Path, help="write the agent's process id here")
    p.add_argument("--guests", action="store_true", help="run the site's guests here (QEMU)")
    p.add_argument("--qemu-state-dir", type=Path, help="guests' files (default: STATE_DIR/qemu)")
    p.add_argument(
        "--hostnet-dir",
        type=Path,
        default=Path("/run/edgefed/hostnet"),
        help="the site's network state here (others must be able to traverse it)",
    )
    p.add_argument("--no-network", action="store_true", help="guests without networks")
    p.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    p.add_argument(
        "--no-site-files",
        action="store_true",
        help="read no file of the site's data directory even where its path resolves here: "
        "fetch images from the site, reach volumes over NBD (as on another machine)",
    )
    p.add_argument(
        "--poll-wait", type=float, default=4.0, help="seconds a command poll waits (site caps it)"
    )
    p.add_argument(
        "--network-interval", type=float, default=2.0, help="seconds between network syncs"
    )
    p.set_defaults(func=run_agent)
