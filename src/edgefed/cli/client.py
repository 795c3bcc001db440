"""The HTTP session of the operator commands (``edgefed fleet``, ``edgefed alarms``).

It reuses the login and connection options of ``edgefed host`` (``--site-url`` or
``OS_AUTH_URL``, ``--os-token`` or a password login), and adds calls to any path of
the site with the site's fault messages turned into one-line errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from edgefed.cli.host import CommandError, SiteClient, _print_table, add_connection_arguments

__all__ = [
    "CommandError",
    "OperatorClient",
    "add_connection_arguments",
    "print_table",
    "run_command",
]

print_table = _print_table


class OperatorClient(SiteClient):
    def request(
        self, method: str, path: str, *, body: Any = None, params: dict[str, str] | None = None
    ) -> Any:
        r = self.http.request(
            method,
            f"{self.base}{path}",
            json=body,
            params={k: v for k, v in (params or {}).items() if v is not None},
            headers={"X-Auth-Token": self.token},
        )
        if r.status_code >= 400:
            raise CommandError(f"{fault_message(r)} (HTTP {r.status_code})")
        return r.json() if r.content else None


def fault_message(r: httpx.Response) -> str:
    try:
        body = r.json()
    except ValueError:
        return r.text[:300] or r.reason_phrase
    if isinstance(body, dict):
        for value in body.values():
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return str(value["message"])
    return r.text[:300]


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def run_command(
    args: argparse.Namespace,
    command: Callable[[argparse.Namespace, OperatorClient], int],
    *,
    transport: httpx.BaseTransport | None = None,
) -> int:
    try:
        return command(args, OperatorClient(args, transport=transport))
    except CommandError as exc:
        print(f"edgefed: {exc}", file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"edgefed: cannot reach the site: {exc}", file=sys.stderr)
        return 1


def rows_of(items: Sequence[dict[str, Any]], columns: Sequence[str]) -> list[dict[str, Any]]:
    return [{c: item.get(c) for c in columns} for item in items]
