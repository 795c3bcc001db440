"""``edgefed fleet``: the fleet's status as this site aggregates it, and remote control.

- ``edgefed fleet status [--scope EXPR]``: every site online, degraded or offline
  with the reason, capacity use, servers and alarm counts, then the totals.
- ``edgefed fleet run --scope EXPR flavor-create NAME --ram MB --vcpus N --disk GB``
- ``edgefed fleet run --scope EXPR call METHOD PATH [JSON]``: any API call.

``run`` prints one line per site with its result and exits 1 unless every site
succeeded. A region operator's scope must stay inside its region.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from edgefed.cli.client import (
    CommandError,
    OperatorClient,
    add_connection_arguments,
    print_json,
    print_table,
    run_command,
)

STATUS_COLUMNS = ("name", "region", "status", "vcpus %", "ram %", "servers", "alarms", "reason")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="fleet_command", required=True)
    status = sub.add_parser("status", help="online/degraded/offline, capacity, alarms per site")
    add_connection_arguments(status)
    status.add_argument("--scope", help="sites to look at (default: the site's aggregate, or *)")
    status.set_defaults(func=lambda a: run_command(a, cmd_status))

    run = sub.add_parser("run", help="run one operation on the sites of a scope")
    add_connection_arguments(run)
    run.add_argument("--scope", required=True, help="e.g. '@region=eu' or 'Berlin&Paris'")
    ops = run.add_subparsers(dest="operation", required=True)
    flavor = ops.add_parser("flavor-create", help="create a flavor at every site")
    flavor.add_argument("name")
    flavor.add_argument("--ram", type=int, required=True, help="MB")
    flavor.add_argument("--vcpus", type=int, required=True)
    flavor.add_argument("--disk", type=int, default=0, help="GB")
    flavor.add_argument("--id", dest="flavor_id")
    call = ops.add_parser("call", help="any API call: METHOD PATH [JSON body]")
    call.add_argument("method", type=str.upper)
    call.add_argument("path")
    call.add_argument("body", nargs="?")
    run.set_defaults(func=lambda a: run_command(a, cmd_run))


def _alarm_summary(counts: dict[str, int] | None) -> str:
    if not counts:
        return "-"
    parts = [f"{n} {sev}" for sev, n in counts.items() if n]
    return ", ".join(parts) or "0"


def _percent(site: dict[str, Any], key: str) -> str:
    capacity = site.get("capacity")
    return "-" if not capacity else f"{capacity[key]['percent']:.0f}"


def cmd_status(args: argparse.Namespace, client: OperatorClient) -> int:
    body = client.request("GET", "/edge/v1/fleet/status", params={"scope": args.scope})
    status = body["fleet_status"]
    if args.format == "json":
        print_json(status)
        return 0
    rows = [
        {
            "name": s["name"],
            "region": s["region"],
            "status": s["status"],
            "vcpus %": _percent(s, "vcpus"),
            "ram %": _percent(s, "ram_mb"),
            "servers": "-" if s["servers"] is None else s["servers"]["total"],
            "alarms": _alarm_summary(s["alarms"]),
            "reason": s["reason"],
        }
        for s in status["sites"]
    ]
    print_table(rows, STATUS_COLUMNS)
    t = status["totals"]
    by = t["by_status"]
    print(
        f"{t['sites']} sites: {by.get('online', 0)} online, {by.get('degraded', 0)} degraded, "
        f"{by.get('offline', 0)} offline; vCPUs {t['capacity']['vcpus']['percent']:.0f}% used, "
        f"RAM {t['capacity']['ram_mb']['percent']:.0f}% used; {t['servers']['total']} servers; "
        f"alarms: {_alarm_summary(t['alarms'])} (reported by {status['reporter']})"
    )
    return 0


def _operation(args: argparse.Namespace) -> tuple[str, str, Any]:
    if args.operation == "flavor-create":
        flavor: dict[str, Any] = {
            "name": args.name,
            "ram": args.ram,
            "vcpus": args.vcpus,
            "disk": args.disk,
        }
        if args.flavor_id:
            flavor["id"] = args.flavor_id
        return "POST", "/compute/v2.1/flavors", {"flavor": flavor}
    body = None
    if args.body:
        try:
            body = json.loads(args.body)
        except ValueError as exc:
            raise CommandError(f"the body is not JSON: {exc}") from exc
    return args.method, args.path, body


def cmd_run(args: argparse.Namespace, client: OperatorClient) -> int:
    method, path, body = _operation(args)
    spec: dict[str, Any] = {"scope": args.scope, "method": method, "path": path}
    if body is not None:
        spec["body"] = body
    result = client.request("POST", "/edge/v1/fleet/run", body={"run": spec})["run"]
    if args.format == "json":
        print_json(result)
    else:
        rows = [
            {"site": r["site"], "status": r["status"], "result": r.get("error") or "ok"}
            for r in result["results"]
        ]
        print_table(rows, ("site", "status", "result"))
    return 0 if result["ok"] else 1
