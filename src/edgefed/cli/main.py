"""Entry point of the ``edgefed`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from edgefed import __version__


def build_parser() -> argparse.ArgumentParser:
    from edgefed.cli import serve, up

    parser = argparse.ArgumentParser(prog="edgefed", description="edge cloud control plane")
    parser.add_argument("--version", action="version", version=f"edgefed {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    site = sub.add_parser("site", help="run or manage one site")
    site_sub = site.add_subparsers(dest="site_command", required=True)
    serve_p = site_sub.add_parser("serve", help="run one site in this process")
    serve.add_arguments(serve_p)
    serve_p.set_defaults(func=serve.run)

    from edgefed.cli import host as host_cli

    host_p = sub.add_parser("host", help="the site's hosts inventory, host agent, provisioning")
    host_cli.add_arguments(host_p)

    from edgefed.cli import alarms as alarms_cli
    from edgefed.cli import fleet as fleet_cli

    fleet_p = sub.add_parser("fleet", help="fleet status (aggregated) and remote control")
    fleet_cli.add_arguments(fleet_p)
    alarms_p = sub.add_parser("alarms", help="alarms of a scope of sites; raise, clear")
    alarms_cli.add_arguments(alarms_p)

    from edgefed.cli import sync as sync_cli

    sync_p = sub.add_parser("sync", help="metadata sync: marks, registration, progress")
    sync_cli.add_arguments(sync_p)

    up_p = sub.add_parser("up", help="start a local fleet (Berlin, Denver, Paris)")
    up.add_arguments(up_p)
    up_p.set_defaults(func=up.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
