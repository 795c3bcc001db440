"""The openstackclient plugin: ``--os-scope`` (or ``OS_SCOPE``) rides as ``X-Scope`` on
every request the command makes, a header the caller set itself wins, no scope sends
no header, and openstacksdk's config loader leaves a scope's braces alone.

keystoneauth's ``Session.request`` is replaced by a recorder for each test (the
plugin wraps whatever it finds there), and everything the plugin changes is put back.
"""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from keystoneauth1 import session as ks_session
from openstack.config import loader

from edgefed.cli import osc_plugin

Sent = list[dict[str, Any]]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    """The headers of each request made through a keystoneauth session."""
    recorded: Sent = []

    def record(self: Any, url: str, method: str, **kwargs: Any) -> str:
        recorded.append(dict(kwargs.get("headers") or {}))
        return f"{method} {url}"

    monkeypatch.setattr(ks_session.Session, "request", record)
    monkeypatch.setattr(osc_plugin, "_patched", False)
    monkeypatch.setattr(osc_plugin, "_state", {"scope": None})
    monkeypatch.setattr(loader, "FORMAT_EXCLUSIONS", loader.FORMAT_EXCLUSIONS)
    monkeypatch.delenv("OS_SCOPE", raising=False)
    return recorded


def command(*argv: str) -> argparse.Namespace:
    """The openstack command's global options parsed, with the plugin's added."""
    parser = osc_plugin.build_option_parser(argparse.ArgumentParser())
    return parser.parse_args(list(argv))


def request(headers: dict[str, str] | None = None) -> Any:
    return ks_session.Session().request("http://berlin.test/compute/v2.1/servers", "GET",
                                        headers=headers)  # fmt: skip


def test_the_scope_option_rides_on_every_request(sent: Sent) -> None:
    args = command("--os-scope", "{compute: Berlin&Denver}")
    assert args.os_scope == "{compute: Berlin&Denver}"
    assert request() == "GET http://berlin.test/compute/v2.1/servers"
    request({"Accept": "application/json"})
    assert sent == [
        {"X-Scope": "{compute: Berlin&Denver}"},
        {"Accept": "application/json", "X-Scope": "{compute: Berlin&Denver}"},
    ]


def test_a_scope_header_the_caller_set_wins(sent: Sent) -> None:
    command("--os-scope", "{compute: *}")
    request({"X-Scope": "{compute: Paris}"})
    assert sent == [{"X-Scope": "{compute: Paris}"}]


def test_os_scope_in_the_environment_is_the_default(
    sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OS_SCOPE", "{image: Berlin|Paris}")
    assert command().os_scope == "{image: Berlin|Paris}"
    request()
    assert sent == [{"X-Scope": "{image: Berlin|Paris}"}]


def test_without_a_scope_no_header_is_sent(sent: Sent) -> None:
    assert command().os_scope is None
    request()
    assert sent == [{}]


def test_adding_the_option_twice_wraps_the_session_once(sent: Sent) -> None:
    command("--os-scope", "{compute: *}")
    command("--os-scope", "{compute: *}")
    request()
    assert sent == [{"X-Scope": "{compute: *}"}]


def test_the_config_loader_keeps_a_scopes_braces(sent: Sent) -> None:
    config = loader.OpenStackConfig(load_yaml_config=False, load_envvars=False)
    with pytest.raises(KeyError):  # without the plugin: "{compute}" read as a field
        config.get_one(auth_type="none", endpoint="http://berlin.test", scope="{compute: *}")
    command()
    cloud = config.get_one(auth_type="none", endpoint="http://berlin.test", scope="{compute: *}")
    assert cloud.config["scope"] == "{compute: *}"
