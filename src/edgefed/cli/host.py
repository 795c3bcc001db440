"""``edgefed host``: the hosts inventory of one site, its host agents and provisioning.

Operator commands talk to a site over HTTP with admin credentials:

- ``--site-url`` (or ``EDGEFED_SITE_URL``; default: ``OS_AUTH_URL`` without its
  ``/identity/v3`` suffix), and
- ``--os-token`` (``OS_TOKEN``), or a password login with ``--os-auth-url``,
  ``--os-username``, ``--os-password``, ``--os-project-name`` (the ``OS_*`` variables,
  as for the ``openstack`` CLI; user and project in the Default domain).

Output is a table, or JSON with ``-f json``. ``edgefed host agent`` runs the host agent
itself (``--site`` and a one-time ``--enroll-token``); ``edgefed host provision``
writes an Ansible inventory and playbook for one host and runs it with ``--run``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from edgefed.cli import agent_command
from edgefed.core.errors import EdgefedError

HOSTS = "/edge/v1/hosts"
COLUMNS = ("id", "hostname", "personality", "mgmt_ip", "administrative", "availability")


class CommandError(Exception):
    pass


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--site-url", default=_env("EDGEFED_SITE_URL"))
    parser.add_argument("--os-token", default=_env("OS_TOKEN"))
    parser.add_argument("--os-auth-url", default=_env("OS_AUTH_URL"))
    parser.add_argument("--os-username", default=_env("OS_USERNAME") or "admin")
    parser.add_argument("--os-password", default=_env("OS_PASSWORD"))
    parser.add_argument("--os-project-name", default=_env("OS_PROJECT_NAME") or "admin")
    parser.add_argument("-f", "--format", choices=("table", "json"), default="table")


class SiteClient:
    """An admin session with one site's inventory; ``transport`` replaces the network
    (tests drive in-process sites through it)."""

    def __init__(self, args: argparse.Namespace, *, transport: httpx.BaseTransport | None = None):
        site_url = args.site_url
        if not site_url and args.os_auth_url:
            site_url = args.os_auth_url.rstrip("/").removesuffix("/v3").removesuffix("/identity")
        if not site_url:
            raise CommandError("give --site-url (or EDGEFED_SITE_URL, or OS_AUTH_URL)")
        self.base = site_url.rstrip("/")
        self.http = httpx.Client(timeout=30.0, transport=transport)
        self.token = args.os_token or self._login(args)

    def _login(self, args: argparse.Namespace) -> str:
        if not args.os_password:
            raise CommandError("give --os-token or --os-password (or OS_TOKEN / OS_PASSWORD)")
        auth_url = (args.os_auth_url or f"{self.base}/identity/v3").rstrip("/")
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": args.os_username,
                            "domain": {"id": "default"},
                            "password": args.os_password,
                        }
                    },
                },
                "scope": {"project": {"name": args.os_project_name, "domain": {"id": "default"}}},
            }
        }
        r = self.http.post(f"{auth_url}/auth/tokens", json=body)
        if r.status_code != 201:
            raise CommandError(f"login failed ({r.status_code}): {_message(r)}")
        return r.headers["x-subject-token"]

    def call(self, method: str, path: str, body: Any = None) -> Any:
        r = self.http.request(
            method, f"{self.base}{HOSTS}{path}", json=body, headers={"X-Auth-Token": self.token}
        )
        if r.status_code >= 400:
            raise CommandError(f"{_message(r)} (HTTP {r.status_code})")
        return r.json() if r.content else None


def _message(r: httpx.Response) -> str:
    try:
        return str(r.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return r.text[:300] or r.reason_phrase


def _print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    cells = [[str("" if row.get(c) is None else row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    print(line)
    print("| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)) + " |")
    print(line)
    for r in cells:
        print("| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |")
    print(line)


def _print_host(args: argparse.Namespace, host: dict[str, Any]) -> None:
    if args.format == "json":
        print(json.dumps(host, indent=2, sort_keys=True))
        return
    rows = [
        {"Field": k, "Value": json.dumps(v) if isinstance(v, dict | list) else v}
        for k, v in host.items()
    ]
    _print_table(rows, ("Field", "Value"))


def _key_values(pairs: Sequence[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise CommandError(f"{what} must be KEY=VALUE, got {pair!r}")
        out[key] = value
    return out


# Commands ---------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace, site: SiteClient) -> None:
    query = f"?personality={args.personality}" if args.personality else ""
    hosts = site.call("GET", query)["hosts"]
    if args.format == "json":
        print(json.dumps(hosts, indent=2, sort_keys=True))
    else:
        _print_table(hosts, COLUMNS)


def cmd_show(args: argparse.Namespace, site: SiteClient) -> None:
    _print_host(args, site.call("GET", f"/{args.host}")["host"])


def cmd_add(args: argparse.Namespace, site: SiteClient) -> None:
    body: dict[str, Any] = {"hostname": args.hostname, "personality": args.personality}
    for name in ("mgmt_ip", "bm_type", "bm_ip", "bm_username"):
        if getattr(args, name) is not None:
            body[name] = getattr(args, name)
    if args.label:
        body["labels"] = _key_values(args.label, "--label")
    _print_host(args, site.call("POST", "", body)["host"])


def cmd_update(args: argparse.Namespace, site: SiteClient) -> None:
    body: dict[str, Any] = {}
    for name, value in _key_values(args.attributes, "attribute").items():
        if name.endswith("_allocation_ratio"):
            try:
                body[name] = float(value)
            except ValueError as exc:
                raise CommandError(f"{name} must be a number, got {value!r}") from exc
        else:
            body[name] = value or None
    if not body:
        raise CommandError("give at least one attribute to update, e.g. personality=edgeworker")
    _print_host(args, site.call("PATCH", f"/{args.host}", body)["host"])


def cmd_delete(args: argparse.Namespace, site: SiteClient) -> None:
    site.call("DELETE", f"/{args.host}")


def cmd_lock(args: argparse.Namespace, site: SiteClient) -> None:
    _print_host(args, site.call("POST", f"/{args.host}/lock")["host"])


def cmd_unlock(args: argparse.Namespace, site: SiteClient) -> None:
    _print_host(args, site.call("POST", f"/{args.host}/unlock")["host"])


def cmd_upgrade(args: argparse.Namespace, site: SiteClient) -> None:
    _print_host(args, site.call("POST", f"/{args.host}/upgrade", {"load": args.load})["host"])


def cmd_label(args: argparse.Namespace, site: SiteClient) -> None:
    body = {"labels": _key_values(args.labels, "label"), "remove": args.remove}
    _print_host(args, site.call("POST", f"/{args.host}/labels", body)["host"])


def cmd_token(args: argparse.Namespace, site: SiteClient) -> None:
    body: dict[str, Any] = {"ttl_seconds": args.ttl}
    if args.hostname:
        body["hostname"] = args.hostname
    if args.personality:
        body["personality"] = args.personality
    token = site.call("POST", "/enrollment-tokens", body)["enrollment_token"]
    if args.format == "json":
        print(json.dumps(token, indent=2, sort_keys=True))
    else:
        print(token["token"])


def cmd_provision(args: argparse.Namespace, site: SiteClient) -> None:
    # Imported here (yaml, the Ansible bundle): every ``edgefed`` process, a site's
    # included, builds this parser, and only this command needs them.
    from edgefed.provisioning.bundle import ProvisionPlan, Target, write_bundle
    from edgefed.provisioning.runner import run_playbook

    host = site.call("GET", f"/{args.host}")["host"]
    if host["personality"] != "edgeworker":
        raise CommandError(f"{host['hostname']} is a {host['personality']}, not an edgeworker")
    controllers = [
        Target(h["hostname"], h["mgmt_ip"])
        for h in site.call("GET", "?personality=controller")["hosts"]
        if h["mgmt_ip"]
    ]
    plan = ProvisionPlan(
        edgeworkers=[
            Target(
                host["hostname"],
                args.address or host["mgmt_ip"],
                {"edgefed_mgmt_ip": host["mgmt_ip"], "edgefed_mgmt_interface": args.interface},
            )
        ],
        controllers=controllers,
        kubernetes_version=args.kubernetes_version,
        controller_address=args.controller_address
        or (controllers[0].address if controllers else ""),
        ntp_servers=tuple(args.ntp_server),
        dns_servers=tuple(args.dns_server),
        http_proxy=args.http_proxy or "",
        connection=args.connection,
        ssh_user=args.ssh_user,
        become=args.become,
        site=site.base,
    )
    try:
        playbook = write_bundle(args.output, plan)
    except EdgefedError as exc:
        raise CommandError(exc.message) from exc
    print(f"wrote {playbook} and {args.output / 'inventory.yml'}")
    if args.run:
        result = run_playbook(args.output, tags=tuple(args.tags or ()))
        print(result.output)
        if result.returncode != 0:
            raise CommandError(f"ansible-playbook failed (exit {result.returncode})")


OPERATOR_COMMANDS: dict[str, Callable[[argparse.Namespace, SiteClient], None]] = {
    "list": cmd_list,
    "show": cmd_show,
    "add": cmd_add,
    "update": cmd_update,
    "delete": cmd_delete,
    "lock": cmd_lock,
    "unlock": cmd_unlock,
    "upgrade": cmd_upgrade,
    "label": cmd_label,
    "enroll-token": cmd_token,
    "provision": cmd_provision,
}


def run_operator(args: argparse.Namespace, *, transport: httpx.BaseTransport | None = None) -> int:
    try:
        OPERATOR_COMMANDS[args.host_command](args, SiteClient(args, transport=transport))
    except CommandError as exc:
        print(f"edgefed: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"edgefed: cannot reach the site: {exc}", file=sys.stderr)
        return 1
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="host_command", required=True)

    def operator(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        add_connection_arguments(p)
        p.set_defaults(func=run_operator)
        return p

    p = operator("list", "list the site's hosts")
    p.add_argument("--personality")
    operator("show", "show one host").add_argument("host", help="host id or hostname")
    p = operator("add", "add a host to the inventory")
    p.add_argument("-n", "--hostname", required=True)
    p.add_argument("-p", "--personality", required=True)
    p.add_argument("--mgmt-ip", dest="mgmt_ip")
    p.add_argument("--bm-type", dest="bm_type")
    p.add_argument("--bm-ip", dest="bm_ip")
    p.add_argument("--bm-username", dest="bm_username")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE")
    p = operator("update", "update a host: ATTRIBUTE=VALUE ... (empty value clears)")
    p.add_argument("host")
    p.add_argument("attributes", nargs="*", metavar="ATTRIBUTE=VALUE")
    operator("delete", "delete a (locked) host").add_argument("host")
    operator("lock", "lock a host: it takes no new workloads").add_argument("host")
    operator("unlock", "unlock a host").add_argument("host")
    p = operator("upgrade", "upgrade a (locked, not edgeworker) host to a software load")
    p.add_argument("host")
    p.add_argument("--load", required=True)
    p = operator("label", "set labels KEY=VALUE, or remove them with --remove KEY")
    p.add_argument("host")
    p.add_argument("labels", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--remove", action="append", default=[], metavar="KEY")
    p = operator("enroll-token", "create a one-time enrollment token for a host agent")
    p.add_argument("--hostname")
    p.add_argument("--personality")
    p.add_argument("--ttl", type=int, default=3600, help="seconds the token stays valid")
    p = operator("provision", "generate (and with --run, run) the host's Ansible playbook")
    p.add_argument("host")
    p.add_argument("--output", type=Path, default=Path("provision"), help="bundle directory")
    p.add_argument("--run", action="store_true", help="run the playbook with ansible-core")
    p.add_argument("--tags", action="append", help="run only these roles (by tag)")
    p.add_argument("--kubernetes-version", help="cluster version, when no controller is listed")
    p.add_argument("--controller-address", help="the Kubernetes controller's address")
    p.add_argument("--address", help="how Ansible reaches the host (default: its mgmt IP)")
    p.add_argument("--interface", default="", help="the host's management interface")
    p.add_argument("--ntp-server", action="append", default=[])
    p.add_argument("--dns-server", action="append", default=[])
    p.add_argument("--http-proxy")
    p.add_argument("--connection", default="ssh", help="ssh, or edgefed_chroot for an image")
    p.add_argument("--ssh-user")
    p.add_argument("--become", action="store_true", help="sudo on the host")

    agent_command.add_parser(sub)
