"""``edgefed site drain NAME --to SCOPE [--watch]`` and ``edgefed site undrain NAME``.

The call goes to the site the connection options name (``--site-url``, ``OS_AUTH_URL``)
with the scope ``{compute: NAME}``, so any site of the fleet passes it on to the one
being drained (docs/relocation.md, "Draining a site")."""

from __future__ import annotations

import argparse
import time
from typing import Any

from edgefed.cli.client import (
    CommandError,
    OperatorClient,
    add_connection_arguments,
    fault_message,
    print_json,
    print_table,
    rows_of,
    run_command,
)

PATH = "/compute/v2.1/os-edge/drain"
COLUMNS = ("name", "server_id", "site", "phase", "bytes_done", "bytes_total", "error")
# --watch follows a drain this long at most, asking this often.
WATCH_SECONDS = 6 * 3600.0
POLL_SECONDS = 2.0


def add_arguments(site_sub: Any) -> None:
    drain = site_sub.add_parser("drain", help="relocate every guest of a site to other sites")
    add_connection_arguments(drain)
    drain.add_argument("name", help="the site to drain")
    drain.add_argument("--to", help="where to: a scope expression, e.g. '@region=eu' or "
                       "'Paris&Denver' (without it: show the drain under way)")  # fmt: skip
    drain.add_argument("--watch", action="store_true", help="follow it until every guest moved")
    drain.set_defaults(func=lambda a: run_command(a, cmd_drain))
    undrain = site_sub.add_parser(
        "undrain", help="stop a drain: moves not committed are undone, the site takes servers"
    )
    add_connection_arguments(undrain)
    undrain.add_argument("name", help="the site to undrain")
    undrain.set_defaults(func=lambda a: run_command(a, cmd_undrain))


def _call(client: OperatorClient, site: str, method: str, body: Any = None) -> Any:
    r = client.http.request(
        method,
        f"{client.base}{PATH}",
        json=body,
        headers={
            "X-Auth-Token": client.token,
            "X-Scope": f"{{compute: {site}}}",
            "OpenStack-API-Version": "compute 2.96",
        },
    )
    if r.status_code >= 400:
        raise CommandError(f"{fault_message(r)} (HTTP {r.status_code})")
    return r.json() if r.content else None


def _show(args: argparse.Namespace, drain: dict[str, Any]) -> None:
    if getattr(args, "format", "table") == "json":
        print_json(drain)
        return
    print(f"{drain['site']}: {drain['state']} to {drain['to']}, "
          f"{drain['moved']} of {drain['total']} moved")  # fmt: skip
    print_table(rows_of(drain["servers"], COLUMNS), COLUMNS)


def cmd_drain(args: argparse.Namespace, client: OperatorClient) -> int:
    if args.to:
        drain = _call(client, args.name, "POST", {"drain": {"to": args.to}})["drain"]
    else:
        drain = _call(client, args.name, "GET")["drain"]
    if not args.watch:
        _show(args, drain)
        return 0
    deadline = time.monotonic() + WATCH_SECONDS
    said = ""
    while True:
        line = ", ".join(
            f"{s['name']} {s['phase']}"
            + (f" {s['bytes_done']}/{s['bytes_total']}" if s.get("bytes_total") else "")
            for s in drain["servers"]
        )
        if line != said:
            print(f"{drain['state']}: {drain['moved']}/{drain['total']} moved; {line}", flush=True)
            said = line
        if drain["state"] == "drained" or all(
            s["phase"] in ("done", "failed", "refused") for s in drain["servers"]
        ):
            _show(args, drain)
            return 0 if drain["moved"] == drain["total"] else 1
        if time.monotonic() > deadline:
            raise CommandError("the drain is still under way")
        time.sleep(POLL_SECONDS)
        drain = _call(client, args.name, "GET")["drain"]


def cmd_undrain(args: argparse.Namespace, client: OperatorClient) -> int:
    _call(client, args.name, "DELETE")
    print(f"{args.name}: undrained")
    return 0
