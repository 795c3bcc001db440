"""An openstackclient plugin: the global option ``--os-scope`` (and ``OS_SCOPE``).

Installed with edgefed (entry point ``openstack.cli.extension``), it adds the option
to every ``openstack`` command and sends its value as the ``X-Scope`` header on every
request the command makes, so for example::

    openstack server list --os-scope '{compute: *}'
    openstack server create vm --image debian --flavor m1.small \\
        --os-scope '{compute: Berlin&Denver, image: Denver|Paris}'

openstacksdk users add the header to their connection's session, one line::

    conn.session.additional_headers["X-Scope"] = "{compute: Berlin&Denver}"
"""

from __future__ import annotations

import argparse
import os
from typing import Any

API_NAME = "edgefed"
API_VERSION_OPTION = "os_edgefed_api_version"
DEFAULT_API_VERSION = "1"
API_VERSIONS = ("1",)
SCOPE_HEADER = "X-Scope"

_state: dict[str, str | None] = {"scope": None}
_patched = False


def make_client(instance: Any) -> None:
    """No client object of our own: the header rides on the shared session."""
    return None


def _install_header_hook() -> None:
    global _patched
    if _patched:
        return
    from keystoneauth1 import session as ks_session
    from openstack.config import loader

    # openstacksdk's config loader runs str.format() on every option value (so that one
    # option can refer to another); a scope's braces would be taken for fields.
    loader.FORMAT_EXCLUSIONS = frozenset(loader.FORMAT_EXCLUSIONS | {"scope"})

    original = ks_session.Session.request

    def request(self: Any, url: str, method: str, **kwargs: Any) -> Any:
        scope = _state["scope"]
        if scope:
            headers = dict(kwargs.get("headers") or {})
            headers.setdefault(SCOPE_HEADER, scope)
            kwargs["headers"] = headers
        return original(self, url, method, **kwargs)

    ks_session.Session.request = request  # type: ignore[method-assign,assignment]
    _patched = True


class _ScopeAction(argparse.Action):
    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        _state["scope"] = str(values) if values else None
        setattr(namespace, self.dest, values)


def build_option_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    default = os.environ.get("OS_SCOPE") or None
    _state["scope"] = default
    parser.add_argument(
        "--os-scope",
        metavar="<scope>",
        default=default,
        action=_ScopeAction,
        help=(
            "edgefed scope: which fleet site serves each service, e.g. "
            "'{compute: Berlin&Denver, image: Denver|Paris}' (Env: OS_SCOPE)"
        ),
    )
    _install_header_hook()
    return parser


def check_api_version(check_version: str) -> bool:
    return True
