"""``edgefed alarms``: list the active alarms of a scope of sites; raise and clear.

- ``edgefed alarms list [--scope EXPR] [--severity S] [--type T]``: every site's
  active alarms as the connected site aggregates them (unreachable sites are named).
- ``edgefed alarms raise --severity S --entity E --reason TEXT [--type T]``
- ``edgefed alarms clear ALARM_ID``  (both on the connected site)
"""

from __future__ import annotations

import argparse
import sys

from edgefed.cli.client import (
    OperatorClient,
    add_connection_arguments,
    print_json,
    print_table,
    run_command,
)

SEVERITIES = ("critical", "major", "minor", "warning")
COLUMNS = ("site", "severity", "type", "entity", "reason", "raised_at", "id")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="alarms_command", required=True)
    ls = sub.add_parser("list", help="active alarms of the sites of a scope")
    add_connection_arguments(ls)
    ls.add_argument("--scope", help="sites (default: the site's aggregate, or *)")
    ls.add_argument("--severity", choices=SEVERITIES)
    ls.add_argument("--type")
    ls.set_defaults(func=lambda a: run_command(a, cmd_list))
    raise_p = sub.add_parser("raise", help="raise an operator alarm on the connected site")
    add_connection_arguments(raise_p)
    raise_p.add_argument("--severity", choices=SEVERITIES, required=True)
    raise_p.add_argument("--entity", required=True)
    raise_p.add_argument("--reason", required=True)
    raise_p.add_argument("--type", default="operator")
    raise_p.set_defaults(func=lambda a: run_command(a, cmd_raise))
    clear = sub.add_parser("clear", help="clear an alarm of the connected site")
    add_connection_arguments(clear)
    clear.add_argument("alarm_id")
    clear.set_defaults(func=lambda a: run_command(a, cmd_clear))


def cmd_list(args: argparse.Namespace, client: OperatorClient) -> int:
    params = {"scope": args.scope, "severity": args.severity, "type": args.type}
    body = client.request("GET", "/edge/v1/fleet/alarms", params=params)
    if args.format == "json":
        print_json(body)
        return 0
    print_table(body["alarms"], COLUMNS)
    offline = [s for s in body["sites"] if s["status"] == "offline"]
    for site in offline:
        print(f"site {site['name']} is offline: {site['reason']}", file=sys.stderr)
    return 0


def cmd_raise(args: argparse.Namespace, client: OperatorClient) -> int:
    alarm = {
        "severity": args.severity,
        "entity": args.entity,
        "reason": args.reason,
        "type": args.type,
    }
    body = client.request("POST", "/edge/v1/alarms", body={"alarm": alarm})
    print_json(body["alarm"]) if args.format == "json" else print(body["alarm"]["id"])
    return 0


def cmd_clear(args: argparse.Namespace, client: OperatorClient) -> int:
    body = client.request("POST", f"/edge/v1/alarms/{args.alarm_id}/clear")
    print_json(body["alarm"]) if args.format == "json" else print(f"cleared {args.alarm_id}")
    return 0
