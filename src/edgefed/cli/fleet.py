"""``edgefed fleet``: the fleet's status as this site aggregates it, and remote control.

- ``edgefed fleet status [--scope EXPR]``: every site online, degraded or offline
  with the reason, capacity use, servers and alarm counts, then the totals.
- ``edgefed fleet run --scope EXPR flavor-create NAME --ram MB --vcpus N --disk GB``
- ``edgefed fleet run --scope EXPR call METHOD PATH [JSON]``: any API call.

``run`` prints one line per site with its result and exits 1 unless every site
succeeded. A region operator's scope must stay inside its region.

Membership and trust (docs/fleet-trust.md):

- ``edgefed fleet sites``: the registry as this site holds it (status, authority, key).
- ``edgefed fleet enroll NAME [--authority] [--expires-in S]``: a one-time token for
  site NAME to join (at a fleet authority).
- ``edgefed fleet revoke NAME``: revoke a site, for good (at a fleet authority).
- ``edgefed fleet map --site S --role R (--project P | --domain D | --system)
  [--user U] [--user-domain D]``: what users of another site may do at this one;
  ``edgefed fleet mappings`` lists the rules, ``edgefed fleet unmap ID`` deletes one.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
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

    sites = sub.add_parser("sites", help="the fleet registry as this site holds it")
    add_connection_arguments(sites)
    sites.set_defaults(func=lambda a: run_command(a, cmd_sites))
    enroll = sub.add_parser("enroll", help="a one-time token for a new site (at an authority)")
    add_connection_arguments(enroll)
    enroll.add_argument("name", help="the name of the site the token is for")
    enroll.add_argument("--authority", action="store_true",
                        help="the site may enroll and revoke sites in its turn")  # fmt: skip
    enroll.add_argument("--expires-in", type=int, default=3600, help="seconds (default 3600)")
    enroll.set_defaults(func=lambda a: run_command(a, cmd_enroll))
    revoke = sub.add_parser("revoke", help="revoke a site for good (at an authority)")
    add_connection_arguments(revoke)
    revoke.add_argument("name")
    revoke.set_defaults(func=lambda a: run_command(a, cmd_revoke))
    mapping = sub.add_parser("map", help="give users of another site a role at this one")
    add_connection_arguments(mapping)
    mapping.add_argument("--site", required=True, help="the users' home site, or '*'")
    mapping.add_argument("--role", required=True, help="role name (or id) granted here")
    mapping.add_argument("--user", default="*", help="one user by name (default: every user)")
    mapping.add_argument("--user-domain", default="Default", help="the users' domain there")
    target = mapping.add_mutually_exclusive_group(required=True)
    target.add_argument("--project", help="project name (default domain) or id here")
    target.add_argument("--domain", help="domain name or id here")
    target.add_argument("--system", action="store_true", help="the system scope")
    mapping.set_defaults(func=lambda a: run_command(a, cmd_map))
    mappings = sub.add_parser("mappings", help="the mapping rules of this site")
    add_connection_arguments(mappings)
    mappings.set_defaults(func=lambda a: run_command(a, cmd_mappings))
    unmap = sub.add_parser("unmap", help="delete a mapping rule")
    add_connection_arguments(unmap)
    unmap.add_argument("mapping_id")
    unmap.set_defaults(func=lambda a: run_command(a, cmd_unmap))


def _printed(
    args: argparse.Namespace,
    found: Any,
    items: list[dict[str, Any]],
    row: Callable[[dict[str, Any]], dict[str, Any]],
    columns: tuple[str, ...],
) -> bool:
    """``found`` as JSON, or a table of ``columns`` with a ``row`` for each of ``items``;
    whether it was the table (which a command may follow with a line)."""
    if args.format == "json":
        print_json(found)
        return False
    print_table([row(item) for item in items], columns)
    return True


def _said(args: argparse.Namespace, found: Any, line: str) -> int:
    """``found`` as JSON, or the one ``line`` a command prints of it."""
    if args.format == "json":
        print_json(found)
    else:
        print(line)
    return 0


def _alarm_summary(counts: dict[str, int] | None) -> str:
    if not counts:
        return "-"
    parts = [f"{n} {sev}" for sev, n in counts.items() if n]
    return ", ".join(parts) or "0"


def _percent(site: dict[str, Any], key: str) -> str:
    capacity = site.get("capacity")
    return "-" if not capacity else f"{capacity[key]['percent']:.0f}"


def _status_row(s: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": s["name"],
        "region": s["region"],
        "status": s["status"],
        "vcpus %": _percent(s, "vcpus"),
        "ram %": _percent(s, "ram_mb"),
        "servers": "-" if s["servers"] is None else s["servers"]["total"],
        "alarms": _alarm_summary(s["alarms"]),
        "reason": s["reason"],
    }


def cmd_status(args: argparse.Namespace, client: OperatorClient) -> int:
    body = client.request("GET", "/edge/v1/fleet/status", params={"scope": args.scope})
    status = body["fleet_status"]
    if not _printed(args, status, status["sites"], _status_row, STATUS_COLUMNS):
        return 0
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
    _printed(args, result, result["results"],
             lambda r: {"site": r["site"], "status": r["status"], "result": r.get("error") or "ok"},
             ("site", "status", "result"))  # fmt: skip
    return 0 if result["ok"] else 1


MAPPINGS = "/identity/v3/OS-EDGE/mappings"


def _site_row(s: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": s["name"],
        "status": s["status"],
        "authority": "yes" if (s.get("enrollment") or {}).get("authority") else "",
        "enrolled by": (s.get("enrollment") or {}).get("by", ""),
        "endpoint": s["endpoint"],
        "key": s["public_key"][:12] + "…",
    }


def cmd_sites(args: argparse.Namespace, client: OperatorClient) -> int:
    sites = client.request("GET", "/edge/v1/fleet/sites")["sites"]
    _printed(args, sites, sites, _site_row,
             ("name", "status", "authority", "enrolled by", "endpoint", "key"))  # fmt: skip
    return 0


def cmd_enroll(args: argparse.Namespace, client: OperatorClient) -> int:
    body = {
        "enrollment": {
            "name": args.name,
            "authority": args.authority,
            "expires_in": args.expires_in,
        }
    }
    enrollment = client.request("POST", "/edge/v1/fleet/enrollments", body=body)["enrollment"]
    return _said(args, enrollment, enrollment["token"])


def cmd_revoke(args: argparse.Namespace, client: OperatorClient) -> int:
    client.request("DELETE", f"/edge/v1/fleet/sites/{args.name}")
    print(f"site {args.name} revoked")
    return 0


def cmd_map(args: argparse.Namespace, client: OperatorClient) -> int:
    spec: dict[str, Any] = {
        "site": args.site,
        "role": args.role,
        "user": args.user,
        "user_domain": args.user_domain,
    }
    if args.project:
        spec["project"] = args.project
    elif args.domain:
        spec["domain"] = args.domain
    else:
        spec["system"] = True
    rule = client.request("POST", MAPPINGS, body={"mapping": spec})["mapping"]
    return _said(args, rule, rule["id"])


def _target(rule: dict[str, Any]) -> str:
    for kind in ("project", "domain"):
        if kind in rule:
            return f"{kind} {rule[kind]['id']}"
    return "system"


def _mapping_row(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": r["id"],
        "site": r["site"],
        "users": f"{r['user']}@{r['user_domain']}",
        "role": r["role"]["name"] or r["role"]["id"],
        "on": _target(r),
        "source": r["source"],
    }


def cmd_mappings(args: argparse.Namespace, client: OperatorClient) -> int:
    rules = client.request("GET", MAPPINGS)["mappings"]
    _printed(args, rules, rules, _mapping_row, ("id", "site", "users", "role", "on", "source"))
    return 0


def cmd_unmap(args: argparse.Namespace, client: OperatorClient) -> int:
    client.request("DELETE", f"{MAPPINGS}/{args.mapping_id}")
    print(f"mapping {args.mapping_id} deleted")
    return 0
