"""``openstack`` commands of the edgefed plugin (entry points ``openstack.edgefed.v1``).

``openstack server relocate --site Paris vm1 [--wait]`` moves a server to another
site of the fleet (docs/relocation.md); ``openstack server relocation list vm1``
shows its moves. They authenticate as every ``openstack`` command does (clouds.yaml,
``OS_*``), through the shared openstacksdk connection.
"""

from __future__ import annotations

import time
from typing import Any

from osc_lib import exceptions
from osc_lib.command import command

COLUMNS = ("id", "server_id", "site", "mode", "phase", "bytes_done", "bytes_total", "error")
# How long --wait follows a move, and how often it asks.
WAIT_SECONDS = 3600.0
POLL_SECONDS = 1.0


def _compute(app: Any) -> Any:
    return app.client_manager.sdk_connection.compute


def _server_id(compute: Any, name_or_id: str) -> str:
    return str(compute.find_server(name_or_id, ignore_missing=False).id)


def _relocations(compute: Any, server_id: str) -> list[dict[str, Any]]:
    r = compute.get(f"/servers/{server_id}/os-edge-relocations")
    if r.status_code != 200:
        raise exceptions.CommandError(f"cannot read the relocations of {server_id}: {r.text}")
    found: list[dict[str, Any]] = r.json()["relocations"]
    return found


def _row(record: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(record.get(c) for c in COLUMNS)


class RelocateServer(command.ShowOne):
    """Move a server to another site of the fleet (cold: stopped, its disk copied; mild:
    its disk copied while it runs, then what changed once stopped)."""

    def get_parser(self, prog_name: str) -> Any:
        parser = super().get_parser(prog_name)
        parser.add_argument("server", metavar="<server>", help="Server to move (name or ID)")
        parser.add_argument(
            "--site", metavar="<site>", required=True, help="Site to move it to (e.g. Paris)"
        )
        parser.add_argument(
            "--mode", metavar="<mode>", default="cold", choices=("cold", "mild"),
            help="How: cold (stop, copy the disk, start there) or mild (copy the disk "
            "while it runs, then stop and copy what changed: a short downtime)",
        )  # fmt: skip
        parser.add_argument(
            "--volumes", metavar="<volumes>", default="remote", choices=("remote", "move"),
            help="Its attached volumes: remote (they stay, attached from there over NBD) "
            "or move (they go with it, same ids; cold only)",
        )  # fmt: skip
        parser.add_argument(
            "--wait", action="store_true", help="Wait until the move is done or failed"
        )
        return parser

    def take_action(self, parsed_args: Any) -> tuple[tuple[str, ...], tuple[Any, ...]]:
        compute = _compute(self.app)
        server_id = _server_id(compute, parsed_args.server)
        body = {"os-edge:relocate": {"site": parsed_args.site, "mode": parsed_args.mode,
                                     "volumes": parsed_args.volumes}}  # fmt: skip
        r = compute.post(f"/servers/{server_id}/action", json=body)
        if r.status_code != 202:
            try:
                message = next(iter(r.json().values()))["message"]
            except (ValueError, KeyError, TypeError, StopIteration):
                message = r.text
            raise exceptions.CommandError(f"{message} (HTTP {r.status_code})")
        record: dict[str, Any] = r.json()["relocation"]
        if parsed_args.wait:
            record = self._follow(compute, server_id, record["id"])
        return COLUMNS, _row(record)

    def _follow(self, compute: Any, server_id: str, relocation_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_SECONDS
        shown = ""
        while True:
            record = next(
                (r for r in _relocations(compute, server_id) if r["id"] == relocation_id), None
            )
            if record is None:
                raise exceptions.CommandError(f"relocation {relocation_id} is gone")
            line = f"{record['phase']}"
            if record.get("bytes_total"):
                line += f" {record['bytes_done']}/{record['bytes_total']} bytes"
            for volume in record.get("volumes") or []:  # "volumes": "move"
                line += f"; volume {volume['id']} {volume['phase']}"
            if line != shown:
                self.app.stderr.write(line + "\n")
                shown = line
            if record["phase"] == "done":
                return record
            if record["phase"] in ("failed", "aborted"):
                raise exceptions.CommandError(
                    f"relocation of {server_id} to {record['site']} {record['phase']}: "
                    f"{record.get('error')}"
                )
            if time.monotonic() > deadline:
                raise exceptions.CommandError(f"relocation {relocation_id} still {line}")
            time.sleep(POLL_SECONDS)


class ListRelocations(command.Lister):
    """List the moves of a server (also of one that left: where it went)."""

    def get_parser(self, prog_name: str) -> Any:
        parser = super().get_parser(prog_name)
        parser.add_argument("server", metavar="<server>", help="Server (ID; name if still here)")
        return parser

    def take_action(self, parsed_args: Any) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        compute = _compute(self.app)
        try:
            server_id = _server_id(compute, parsed_args.server)
        except Exception:  # gone from here: its id still names its moves
            server_id = parsed_args.server
        return COLUMNS, [_row(r) for r in _relocations(compute, server_id)]
