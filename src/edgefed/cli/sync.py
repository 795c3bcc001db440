"""``edgefed sync``: mark resources, register with a source, watch progress.

    edgefed sync mark project 6f1c… --to '@tier=edge'
    edgefed sync unmark project 6f1c…
    edgefed sync marks
    edgefed sync register --source Central        # at the receiver: asks Central
    edgefed sync receivers                        # at the source: who asked, in what state
    edgefed sync accept Denver                    # at the source: serve Denver
    edgefed sync refuse Denver                    # at the source: refuse, or stop serving
    edgefed sync unregister --source Central
    edgefed sync request image 0b3e… [--source Central]
    edgefed sync conflicts [--source Central]     # at the receiver: clashes with its rows
    edgefed sync conflicts resolve project 6f1c… --source Central [--adopt | --dismiss]
    edgefed sync status [--watch] [--kind K --id ID]

``status`` prints one progress bar per target (done / total, failing in the count), and
the same for every site below in the hierarchy, indented; ``--watch`` redraws it in
place with plain ANSI until interrupted (or ``--count`` redraws).
"""

from __future__ import annotations

import argparse
import sys
import time
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

SYNC = "/edge/v1/sync"
BAR_WIDTH = 30


def _posted(
    args: argparse.Namespace,
    client: OperatorClient,
    path: str,
    key: str,
    sentence: Callable[[dict[str, Any]], str],
    body: dict[str, Any] | None = None,
) -> int:
    """POST to ``{SYNC}/{path}``; print the answer's ``key`` (JSON) or its sentence."""
    found = client.request("POST", f"{SYNC}/{path}", body=body)[key]
    if args.format == "json":
        print_json(found)
    else:
        print(sentence(found))
    return 0


def _listed(
    args: argparse.Namespace, client: OperatorClient, key: str, columns: tuple[str, ...]
) -> int:
    """GET ``{SYNC}/{key}``; print its rows (JSON or a table of ``columns``)."""
    rows = client.request("GET", f"{SYNC}/{key}")[key]
    if args.format == "json":
        print_json(rows)
    else:
        print_table(rows, columns)
    return 0


def _deleted(client: OperatorClient, path: str, sentence: str) -> int:
    """DELETE ``{SYNC}/{path}``; print what it did."""
    client.request("DELETE", f"{SYNC}/{path}")
    print(sentence)
    return 0


def cmd_mark(args: argparse.Namespace, client: OperatorClient) -> int:
    body = {"mark": {"kind": args.kind, "id": args.id, "to": args.to}}
    return _posted(args, client, "marks", "mark", _marked, body)


def _marked(mark: dict[str, Any]) -> str:
    return f"marked {mark['kind']} {mark['id']} for sync to {mark['to']}"


def cmd_unmark(args: argparse.Namespace, client: OperatorClient) -> int:
    return _deleted(client, f"marks/{args.kind}/{args.id}", f"unmarked {args.kind} {args.id}")


def cmd_marks(args: argparse.Namespace, client: OperatorClient) -> int:
    return _listed(args, client, "marks", ("kind", "id", "to", "origin"))


def cmd_register(args: argparse.Namespace, client: OperatorClient) -> int:
    body = {"registration": {"source": args.source}}
    return _posted(args, client, "registrations", "registration", _registered, body)


def _registered(reg: dict[str, Any]) -> str:
    if reg["status"] == "pending":
        return (
            f"{reg['receiver']} asked {reg['source']} to serve it; waiting for an admin of "
            f"{reg['source']} to accept: edgefed sync accept {reg['receiver']}"
        )
    return (
        f"{reg['receiver']} registered with {reg['source']}; "
        f"first full sync started ({reg['queued']} deliveries queued)"
    )


def cmd_receivers(args: argparse.Namespace, client: OperatorClient) -> int:
    return _listed(args, client, "receivers", ("name", "state", "requested_at", "accepted_at"))


def cmd_accept(args: argparse.Namespace, client: OperatorClient) -> int:
    return _posted(args, client, f"receivers/{args.name}/accept", "receiver", _accepted)


def _accepted(receiver: dict[str, Any]) -> str:
    if receiver["state"] == "accepted":
        return (
            f"accepted {receiver['name']} as a sync receiver; first full sync started "
            f"({receiver['queued']} deliveries queued)"
        )
    return f"approved {receiver['name']} ahead: its registration will be accepted at once"


def cmd_refuse(args: argparse.Namespace, client: OperatorClient) -> int:
    done = f"{args.name} is no sync receiver of this site (what it received stays there)"
    return _deleted(client, f"receivers/{args.name}", done)


def cmd_conflicts(args: argparse.Namespace, client: OperatorClient) -> int:
    if args.action == "resolve":
        return _resolve(args, client)
    if args.action is not None:
        raise CommandError(f"unknown conflicts action {args.action!r} (resolve)")
    params = {"source": args.source, "kind": args.kind_filter}
    found = client.request("GET", f"{SYNC}/conflicts", params=params)["conflicts"]
    if args.format == "json":
        print_json(found)
        return 0
    if not found:
        print("no sync conflicts")
        return 0
    rows = [
        {
            "source": c["source"],
            "kind": c["kind"],
            "id": c["id"],
            "op": c["op"],
            "held here": f"{c['held']['kind']} {c['held']['id']} "
            f"({'own' if c['held']['origin'] is None else 'from ' + c['held']['origin']})",
            "count": c["count"],
        }
        for c in found
    ]
    print_table(rows, ("source", "kind", "id", "op", "held here", "count"))
    for c in found[:20]:
        print(f"  {c['kind']} {c['id']}: {c['message']}")
    return 0


def _resolve(args: argparse.Namespace, client: OperatorClient) -> int:
    if not (args.kind and args.id and args.source):
        raise CommandError("conflicts resolve needs KIND ID and --source")
    body = {"resolve": {"source": args.source, "kind": args.kind, "id": args.id,
                        "adopt": args.adopt, "dismiss": args.dismiss}}  # fmt: skip

    def settled(resolved: dict[str, Any]) -> str:
        what = {
            "adopted": f"adopted {args.source}'s version",
            "dismissed": "kept this site's row and dismissed the clash",
            "requested": f"asked {args.source} for its version again",
        }[resolved["resolution"]]
        return f"{args.kind} {args.id}: {what}"

    return _posted(args, client, "conflicts/resolve", "resolved", settled, body)


def cmd_unregister(args: argparse.Namespace, client: OperatorClient) -> int:
    done = f"no longer receiving from {args.source} (data received so far is kept)"
    return _deleted(client, f"registrations/{args.source}", done)


def cmd_request(args: argparse.Namespace, client: OperatorClient) -> int:
    body = {"request": {"kind": args.kind, "id": args.id, "source": args.source}}

    def requested(answer: dict[str, Any]) -> str:
        return f"requested {args.kind} {args.id} from {', '.join(answer['sources'])}"

    return _posted(args, client, "requests", "request", requested, body)


def bar(done: int, total: int, *, width: int = BAR_WIDTH) -> str:
    fraction = 1.0 if total == 0 else done / total
    filled = round(fraction * width)
    return "[" + "#" * filled + "-" * (width - filled) + f"] {fraction * 100:5.1f}%"


def render(report: dict[str, Any], *, indent: int = 0) -> list[str]:
    pad = "  " * indent
    lines = [f"{pad}{report.get('site', '?')}"]
    if report.get("reachable") is False:
        return [f"{pad}{report.get('site', '?')}  unreachable: {report.get('error', '')}"]
    for target, t in sorted(report.get("targets", {}).items()):
        lines.append(
            f"{pad}  -> {target:<14} {bar(t['done'], t['total'])} "
            f"{t['done']}/{t['total']} done, {t['pending']} pending, {t['inflight']} in flight, "
            f"{t['failing']} failing, {t.get('conflict', 0)} conflicts, breaker {t['breaker']}"
        )
    for f in report.get("failing", [])[:5]:
        lines.append(
            f"{pad}     ! {f['kind']} {f['id']} -> {f['target']}: "
            f"{f['last_error']} (attempts {f['attempts']})"
        )
    for c in report.get("conflicts", [])[:5]:
        lines.append(f"{pad}     ~ conflict with {c['source']}: {c['message']} (x{c['count']})")
    for reg in report.get("registrations", []):
        lines.append(f"{pad}     ? {reg['receiver']} asked to receive: {reg['state']}")
    for image in report.get("images", []):
        if image["state"] != "done":
            lines.append(
                f"{pad}     image {image['image_id']} from {image['source']}: {image['state']}"
            )
    for child in report.get("children", []):
        lines.extend(render(child, indent=indent + 2))
    return lines


def cmd_status(args: argparse.Namespace, client: OperatorClient) -> int:
    params = {"kind": args.kind, "id": args.id}
    rounds = 0
    previous = 0
    while True:
        report = client.request("GET", f"{SYNC}/progress", params=params)["progress"]
        if args.format == "json":
            print_json(report)
            return 0
        lines = render(report)
        for r in report.get("resources", []):
            lines.append(
                f"  {r['kind']} {r['id']} -> {r['target']}: {r['state']} (v{r['version']}, "
                f"attempts {r['attempts']}){' ' + r['last_error'] if r['last_error'] else ''}"
            )
        if args.watch and previous:
            sys.stdout.write(f"\x1b[{previous}F\x1b[J")
        sys.stdout.write("\n".join(lines) + "\n")
        sys.stdout.flush()
        previous = len(lines)
        rounds += 1
        if not args.watch or (args.count and rounds >= args.count):
            return 0
        time.sleep(args.interval)  # the refresh cadence of --watch


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="sync_command", required=True)

    def command(name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        add_connection_arguments(p)
        p.set_defaults(func=lambda args: run_command(args, func))
        return p

    p = command("mark", "mark a resource for sync to a target set", cmd_mark)
    p.add_argument("kind", help="project, user, group, role, role_assignment, flavor, …")
    p.add_argument("id", help="the resource id, or '*' for every resource of the kind")
    p.add_argument("--to", required=True, help="sites, '@key=value', '*', comma-separated")
    p = command("unmark", "remove a sync mark", cmd_unmark)
    p.add_argument("kind")
    p.add_argument("id")
    command("marks", "list the sync marks", cmd_marks)
    p = command("register", "register this site as a receiver of a source", cmd_register)
    p.add_argument("--source", required=True)
    p = command("unregister", "stop receiving from a source", cmd_unregister)
    p.add_argument("--source", required=True)
    command("receivers", "list the sites that asked to receive from this site", cmd_receivers)
    p = command("accept", "accept (or approve ahead) a site as a sync receiver", cmd_accept)
    p.add_argument("name", help="the receiving site")
    p = command("refuse", "refuse a registration request, or stop serving a receiver", cmd_refuse)
    p.add_argument("name", help="the receiving site")
    p = command(
        "conflicts",
        "list pushes that clash with rows this site holds; 'conflicts resolve' settles one",
        cmd_conflicts,
    )
    p.add_argument("action", nargs="?", choices=["resolve"], help="resolve one conflict")
    p.add_argument("kind", nargs="?", help="with resolve: the resource kind")
    p.add_argument("id", nargs="?", help="with resolve: the resource id")
    p.add_argument("--source", default=None, help="the sync source (required with resolve)")
    p.add_argument("--kind", dest="kind_filter", default=None, help="list one kind only")
    how = p.add_mutually_exclusive_group()
    how.add_argument(
        "--adopt", action="store_true", help="the source's version replaces the row held here"
    )
    how.add_argument(
        "--dismiss", action="store_true", help="keep the row held here and forget the clash"
    )
    p = command("request", "ask a source for one resource (an image) now", cmd_request)
    p.add_argument("kind")
    p.add_argument("id")
    p.add_argument("--source", default=None)
    p = command("status", "sync progress per target, with the sites below", cmd_status)
    p.add_argument("--watch", action="store_true", help="redraw until interrupted")
    p.add_argument("--interval", type=float, default=1.0)
    p.add_argument("--count", type=int, default=0, help="with --watch: stop after N redraws")
    p.add_argument("--kind", default=None)
    p.add_argument("--id", default=None)
