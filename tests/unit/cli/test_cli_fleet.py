"""``edgefed fleet``: argv parsed as an operator types it, run against an in-process site
(or a fake answering a canned report), and what is printed."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from cli_kit import cli, connection, fake

from edgefed.cli import fleet
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import admin


def to(site: InProcessSite) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=site.app)


def token(site: InProcessSite) -> list[str]:
    return connection(admin(site)["X-Auth-Token"])


def table_rows(out: str) -> list[list[str]]:
    """The rows of the first table printed (header included)."""
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in out.splitlines()
        if line.startswith("|")
    ]


async def test_status_prints_one_row_per_site_and_the_totals(
    site: InProcessSite, capsys: pytest.CaptureFixture[str]
) -> None:
    code = await cli(["fleet", "status", *token(site)], fleet.cmd_status, to(site))
    assert code == 0
    out = capsys.readouterr().out
    header, berlin = table_rows(out)
    assert header == list(fleet.STATUS_COLUMNS)
    row = dict(zip(header, berlin, strict=True))
    assert (row["name"], row["status"], row["vcpus %"], row["servers"]) == (
        "Berlin",
        "online",
        "0",
        "0",
    )
    assert row["alarms"] == "0"
    assert out.splitlines()[-1].startswith("1 sites: 1 online, 0 degraded, 0 offline;")
    assert "(reported by Berlin)" in out


async def test_status_as_json_is_the_apis_report(
    site: InProcessSite, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["fleet", "status", "--scope", "Berlin", "-f", "json", *token(site)]
    assert await cli(argv, fleet.cmd_status, to(site)) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["scope"] == "Berlin"
    assert [s["name"] for s in printed["sites"]] == ["Berlin"]
    assert printed["totals"]["sites"] == 1


def canned_status(request: httpx.Request) -> httpx.Response:
    offline: dict[str, Any] = {
        "name": "Paris",
        "region": "eu",
        "status": "offline",
        "reason": "no answer for 40 s",
        "capacity": None,
        "servers": None,
        "alarms": None,
    }
    online: dict[str, Any] = {
        "name": "Rome",
        "region": "eu",
        "status": "degraded",
        "reason": "1 critical/major alarm(s): power",
        "capacity": {"vcpus": {"percent": 12.4}, "ram_mb": {"percent": 50.0}},
        "servers": {"total": 7},
        "alarms": {"critical": 1, "major": 0, "minor": 2, "warning": 0},
    }
    totals = {
        "sites": 2,
        "by_status": {"online": 0, "degraded": 1, "offline": 1},
        "capacity": {"vcpus": {"percent": 12.4}, "ram_mb": {"percent": 50.0}},
        "servers": {"total": 7},
        "alarms": {"critical": 1, "major": 0, "minor": 2, "warning": 0},
    }
    assert request.url.params.get("scope") == "@region=eu"
    body = {"fleet_status": {"reporter": "EuHub", "sites": [offline, online], "totals": totals}}
    return httpx.Response(200, json=body)


async def test_a_site_that_did_not_report_shows_dashes_and_its_reason(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["fleet", "status", "--scope", "@region=eu", *connection()]
    assert await cli(argv, fleet.cmd_status, fake(canned_status)) == 0
    out = capsys.readouterr().out
    _, paris, rome = table_rows(out)
    assert paris == ["Paris", "eu", "offline", "-", "-", "-", "-", "no answer for 40 s"]
    assert rome[3:7] == ["12", "50", "7", "1 critical, 2 minor"]
    assert "2 sites: 0 online, 1 degraded, 1 offline; vCPUs 12% used, RAM 50% used" in out
    assert "alarms: 1 critical, 2 minor (reported by EuHub)" in out


async def test_run_creates_a_flavor_and_a_second_run_fails_naming_why(
    site: InProcessSite, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "fleet",
        "run",
        *token(site),
        "--scope",
        "Berlin",
        "flavor-create",
        "edge.small",
        "--ram",
        "512",
        "--vcpus",
        "1",
        "--disk",
        "1",
    ]
    assert await cli(argv, fleet.cmd_run, to(site)) == 0
    assert table_rows(capsys.readouterr().out)[1] == ["Berlin", "200", "ok"]
    r = await site.client.get("/compute/v2.1/flavors", headers=admin(site))
    assert "edge.small" in {f["name"] for f in r.json()["flavors"]}
    assert await cli(argv, fleet.cmd_run, to(site)) == 1
    [row] = table_rows(capsys.readouterr().out)[1:]
    assert row[:2] == ["Berlin", "409"] and "edge.small" in row[2]


async def test_run_call_sends_any_method_path_and_json_body(
    site: InProcessSite, capsys: pytest.CaptureFixture[str]
) -> None:
    body = json.dumps({"alarm": {"severity": "minor", "entity": "rack=9", "reason": "door"}})
    argv = [
        "fleet",
        "run",
        *token(site),
        "-f",
        "json",
        "--scope",
        "Berlin",
        "call",
        "post",
        "/edge/v1/alarms",
        body,
    ]
    assert await cli(argv, fleet.cmd_run, to(site)) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["method"] == "POST" and result["ok"]
    assert result["body"]["alarm"]["entity"] == "rack=9"


async def test_a_call_body_that_is_not_json_is_refused_before_any_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    asked: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return httpx.Response(500)

    argv = ["fleet", "run", *connection(), "--scope", "*", "call", "POST", "/edge/v1/alarms", "{"]
    assert await cli(argv, fleet.cmd_run, fake(handler)) == 1
    assert "edgefed: the body is not JSON" in capsys.readouterr().err
    assert asked == []


async def test_sites_lists_the_registry_with_authorities_and_short_keys(
    site: InProcessSite, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await cli(["fleet", "sites", *token(site)], fleet.cmd_sites, to(site)) == 0
    header, berlin = table_rows(capsys.readouterr().out)
    row = dict(zip(header, berlin, strict=True))
    assert (row["name"], row["status"], row["authority"], row["enrolled by"]) == (
        "Berlin",
        "active",
        "yes",
        "Berlin",
    )
    assert row["endpoint"] == "http://berlin.test"
    assert row["key"].endswith("…") and len(row["key"]) == 13


async def test_enroll_prints_a_token_for_the_name_and_revoke_says_so(
    site: InProcessSite, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["fleet", "enroll", *token(site), "Lyon", "--authority", "--expires-in", "600"]
    assert await cli(argv, fleet.cmd_enroll, to(site)) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("EF1.")
    from edgefed.services.sites.enrollment import EnrollmentToken

    assert EnrollmentToken.decode(printed).site_name == "Lyon"
    argv = ["fleet", "revoke", *token(site), "Lyon"]
    assert await cli(argv, fleet.cmd_revoke, to(site)) == 1  # not a member yet
    assert "site Lyon is not in the fleet registry (HTTP 404)" in capsys.readouterr().err


async def test_map_lists_and_unmap_mapping_rules(
    site: InProcessSite, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "fleet",
        "map",
        *token(site),
        "--site",
        "Paris",
        "--role",
        "member",
        "--project",
        "admin",
        "--user",
        "alice",
    ]
    assert await cli(argv, fleet.cmd_map, to(site)) == 0
    rule_id = capsys.readouterr().out.strip()
    assert await cli(["fleet", "mappings", *token(site)], fleet.cmd_mappings, to(site)) == 0
    header, *rows = table_rows(capsys.readouterr().out)
    assert header == ["id", "site", "users", "role", "on", "source"]
    [rule] = [dict(zip(header, r, strict=True)) for r in rows if r[0] == rule_id]
    assert (rule["site"], rule["users"], rule["source"]) == ("Paris", "alice@Default", "api")
    assert rule["on"].startswith("project ")
    assert await cli(["fleet", "unmap", *token(site), rule_id], fleet.cmd_unmap, to(site)) == 0
    assert capsys.readouterr().out.strip() == f"mapping {rule_id} deleted"


async def test_mappings_show_the_role_by_name_or_else_by_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    rules = [
        {
            "id": "r1",
            "site": "*",
            "user": "*",
            "user_domain": "Default",
            "source": "config",
            "role": {"id": "rid1", "name": "admin"},
            "system": {"all": True},
        },
        {
            "id": "r2",
            "site": "Paris",
            "user": "eve",
            "user_domain": "Ops",
            "source": "api",
            "role": {"id": "rid2", "name": None},
            "domain": {"id": "d9"},
        },
    ]
    answer = fake(lambda r: httpx.Response(200, json={"mappings": rules}))
    assert await cli(["fleet", "mappings", *connection()], fleet.cmd_mappings, answer) == 0
    _, first, second = table_rows(capsys.readouterr().out)
    assert first == ["r1", "*", "*@Default", "admin", "system", "config"]
    assert second == ["r2", "Paris", "eve@Ops", "rid2", "domain d9", "api"]


def test_map_needs_exactly_one_target() -> None:
    from cli_kit import parse

    with pytest.raises(SystemExit):
        parse(["fleet", "map", "--site", "Paris", "--role", "member"])
    with pytest.raises(SystemExit):
        parse(["fleet", "map", "--site", "P", "--role", "r", "--project", "a", "--system"])
    args = parse(["fleet", "map", "--site", "P", "--role", "r", "--system"])
    assert args.system and args.project is None and args.user == "*"


async def test_a_refusal_is_one_line_with_the_sites_message_and_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403, json={"error": {"code": 403, "message": "Not in your region"}})

    assert await cli(["fleet", "status", *connection()], fleet.cmd_status, fake(refuse)) == 1
    assert capsys.readouterr().err == "edgefed: Not in your region (HTTP 403)\n"

    def broken(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="upstream down")

    assert await cli(["fleet", "status", *connection()], fleet.cmd_status, fake(broken)) == 1
    assert capsys.readouterr().err == "edgefed: upstream down (HTTP 502)\n"

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    assert await cli(["fleet", "status", *connection()], fleet.cmd_status, fake(unreachable)) == 1
    assert "edgefed: cannot reach the site: connection refused" in capsys.readouterr().err
