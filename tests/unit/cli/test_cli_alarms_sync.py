"""``edgefed alarms`` against an in-process site, and ``edgefed sync``: its progress tree
rendered from a report, and what each command prints of the site's answer."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from cli_kit import cli, connection, fake, parse

from edgefed.cli import alarms, sync
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import admin


def to(site: InProcessSite) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=site.app)


def token(site: InProcessSite) -> list[str]:
    return connection(admin(site)["X-Auth-Token"])


# ---- alarms --------------------------------------------------------------------------------


async def test_raise_list_and_clear_an_alarm(
    site: InProcessSite, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "alarms",
        "raise",
        *token(site),
        "--severity",
        "major",
        "--entity",
        "rack=2",
        "--reason",
        "power feed lost",
        "--type",
        "power",
    ]
    assert await cli(argv, alarms.cmd_raise, to(site)) == 0
    alarm_id = capsys.readouterr().out.strip()
    r = await site.client.get(f"/edge/v1/alarms/{alarm_id}", headers=admin(site))
    assert r.json()["alarm"]["reason"] == "power feed lost"

    assert await cli(["alarms", "list", *token(site)], alarms.cmd_list, to(site)) == 0
    out = capsys.readouterr()
    lines = [line for line in out.out.splitlines() if line.startswith("|")]
    assert [c.strip() for c in lines[0].strip("|").split("|")] == list(alarms.COLUMNS)
    row = [c.strip() for c in lines[1].strip("|").split("|")]
    assert row[:5] == ["Berlin", "major", "power", "rack=2", "power feed lost"]
    assert row[-1] == alarm_id
    assert out.err == ""

    argv = ["alarms", "clear", *token(site), alarm_id]
    assert await cli(argv, alarms.cmd_clear, to(site)) == 0
    assert capsys.readouterr().out.strip() == f"cleared {alarm_id}"
    assert await cli(argv, alarms.cmd_clear, to(site)) == 1
    assert "was already cleared" in capsys.readouterr().err


async def test_list_filters_and_json(
    site: InProcessSite, capsys: pytest.CaptureFixture[str]
) -> None:
    for severity, entity in (("minor", "rack=1"), ("critical", "rack=2")):
        argv = [
            "alarms",
            "raise",
            *token(site),
            "--severity",
            severity,
            "--entity",
            entity,
            "--reason",
            "x",
        ]
        assert await cli(argv, alarms.cmd_raise, to(site)) == 0
    capsys.readouterr()
    argv = ["alarms", "list", *token(site), "-f", "json", "--severity", "critical"]
    assert await cli(argv, alarms.cmd_list, to(site)) == 0
    body = json.loads(capsys.readouterr().out)
    assert [a["entity"] for a in body["alarms"]] == ["rack=2"]
    assert body["sites"][0]["name"] == "Berlin"
    with pytest.raises(SystemExit):
        parse(["alarms", "list", "--severity", "dire"])
    with pytest.raises(SystemExit):
        parse(["alarms", "raise", "--severity", "major", "--entity", "x"])  # no reason


async def test_offline_sites_are_named_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    body = {
        "alarms": [],
        "sites": [
            {"name": "Berlin", "status": "online", "reason": "answering"},
            {"name": "Paris", "status": "offline", "reason": "no answer for 30 s"},
        ],
    }
    answer = fake(lambda r: httpx.Response(200, json=body))
    assert await cli(["alarms", "list", *connection()], alarms.cmd_list, answer) == 0
    captured = capsys.readouterr()
    assert captured.err == "site Paris is offline: no answer for 30 s\n"
    assert "Berlin" not in captured.err


# ---- sync: the progress tree ---------------------------------------------------------------


def test_a_bar_fills_with_the_done_fraction() -> None:
    assert sync.bar(0, 4, width=4) == "[----]   0.0%"
    assert sync.bar(1, 4, width=4) == "[#---]  25.0%"
    assert sync.bar(4, 4, width=4) == "[####] 100.0%"
    assert sync.bar(0, 0, width=4) == "[####] 100.0%"  # nothing to do is done


def target(**over: Any) -> dict[str, Any]:
    return {
        "done": 3,
        "total": 4,
        "pending": 1,
        "inflight": 0,
        "failing": 1,
        "conflict": 0,
        "breaker": "closed",
        **over,
    }


def test_the_tree_shows_targets_failures_conflicts_and_the_sites_below() -> None:
    report = {
        "site": "Central",
        "targets": {"Paris": target(), "Berlin": target(done=4, failing=0)},
        "failing": [
            {"kind": "image", "id": "i1", "target": "Paris", "last_error": "refused", "attempts": 3}
        ],
        "conflicts": [{"source": "Hq", "message": "name taken", "count": 2}],
        "registrations": [{"receiver": "Oslo", "state": "pending"}],
        "images": [
            {"image_id": "i1", "source": "Hq", "state": "fetching"},
            {"image_id": "i2", "source": "Hq", "state": "done"},
        ],
        "children": [
            {"site": "EuHub", "targets": {"Lyon": target(breaker="open")}},
            {"site": "UsHub", "reachable": False, "error": "timed out"},
        ],
    }
    lines = sync.render(report)
    assert lines[0] == "Central"
    assert lines[1].startswith("  -> Berlin ")  # targets sorted by name
    assert "4/4 done" in lines[1] and "100.0%" in lines[1]
    assert "3/4 done, 1 pending, 0 in flight, 1 failing, 0 conflicts, breaker closed" in lines[2]
    assert "     ! image i1 -> Paris: refused (attempts 3)" in lines
    assert "     ~ conflict with Hq: name taken (x2)" in lines
    assert "     ? Oslo asked to receive: pending" in lines
    assert "     image i1 from Hq: fetching" in lines
    assert not any("i2" in line for line in lines)  # done images are not listed
    assert "    EuHub" in lines
    assert any(line.startswith("      -> Lyon ") and "breaker open" in line for line in lines)
    assert lines[-1] == "    UsHub  unreachable: timed out"


def progress_answer(report: dict[str, Any]) -> httpx.MockTransport:
    return fake(lambda r: httpx.Response(200, json={"progress": report}))


async def test_status_prints_the_tree_and_the_resource_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    report = {
        "site": "Central",
        "targets": {"Paris": target()},
        "resources": [
            {
                "kind": "image",
                "id": "i1",
                "target": "Paris",
                "state": "failing",
                "version": 3,
                "attempts": 2,
                "last_error": "refused",
            },
        ],
    }
    argv = ["sync", "status", *connection(), "--kind", "image", "--id", "i1"]
    assert await cli(argv, sync.cmd_status, progress_answer(report)) == 0
    out = capsys.readouterr().out
    assert out.startswith("Central\n")
    assert "  image i1 -> Paris: failing (v3, attempts 2) refused\n" in out


async def test_status_watch_redraws_in_place(capsys: pytest.CaptureFixture[str]) -> None:
    report = {"site": "Central", "targets": {"Paris": target()}}
    argv = ["sync", "status", *connection(), "--watch", "--count", "2", "--interval", "0"]
    assert await cli(argv, sync.cmd_status, progress_answer(report)) == 0
    out = capsys.readouterr().out
    assert out.count("Central\n") == 2
    assert "\x1b[2F\x1b[J" in out  # up two lines (the first drawing), clear, draw again


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (
            "pending",
            "Denver asked Central to serve it; waiting for an admin of Central to "
            "accept: edgefed sync accept Denver",
        ),
        (
            "accepted",
            "Denver registered with Central; first full sync started (12 deliveries queued)",
        ),
    ],
)
async def test_register_says_what_happens_next(
    status: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sent: list[Any] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        reg = {"receiver": "Denver", "source": "Central", "status": status, "queued": 12}
        return httpx.Response(201, json={"registration": reg})

    argv = ["sync", "register", *connection(), "--source", "Central"]
    assert await cli(argv, sync.cmd_register, fake(answer)) == 0
    assert capsys.readouterr().out.strip() == message
    assert sent == [{"registration": {"source": "Central"}}]


async def test_conflicts_none_a_table_and_resolve_needs_its_arguments(
    capsys: pytest.CaptureFixture[str],
) -> None:
    conflicts: list[dict[str, Any]] = []
    answer = fake(lambda r: httpx.Response(200, json={"conflicts": conflicts}))
    assert await cli(["sync", "conflicts", *connection()], sync.cmd_conflicts, answer) == 0
    assert capsys.readouterr().out == "no sync conflicts\n"
    conflicts.append(
        {
            "source": "Central",
            "kind": "project",
            "id": "p1",
            "op": "upsert",
            "count": 2,
            "held": {"kind": "project", "id": "p9", "origin": None},
            "message": "name research is taken here",
        }
    )
    assert await cli(["sync", "conflicts", *connection()], sync.cmd_conflicts, answer) == 0
    out = capsys.readouterr().out
    assert "project p9 (own)" in out and "  project p1: name research is taken here" in out
    argv = ["sync", "conflicts", *connection(), "resolve", "project", "p1"]
    assert await cli(argv, sync.cmd_conflicts, answer) == 1
    assert "conflicts resolve needs KIND ID and --source" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["sync", "conflicts", "resolve", "project", "p1", "--adopt", "--dismiss"])


async def test_resolve_says_what_was_done(capsys: pytest.CaptureFixture[str]) -> None:
    sent: list[Any] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json={"resolved": {"resolution": "adopted"}})

    argv = [
        "sync",
        "conflicts",
        *connection(),
        "resolve",
        "project",
        "p1",
        "--source",
        "Central",
        "--adopt",
    ]
    assert await cli(argv, sync.cmd_conflicts, fake(answer)) == 0
    assert capsys.readouterr().out.strip() == "project p1: adopted Central's version"
    assert sent == [
        {
            "resolve": {
                "source": "Central",
                "kind": "project",
                "id": "p1",
                "adopt": True,
                "dismiss": False,
            }
        }
    ]


async def test_mark_and_accept_print_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/marks"):
            mark = {"kind": "project", "id": "p1", "to": "@tier=edge"}
            return httpx.Response(201, json={"mark": mark})
        receiver = {"name": "Denver", "state": "approved"}
        return httpx.Response(200, json={"receiver": receiver})

    argv = ["sync", "mark", *connection(), "project", "p1", "--to", "@tier=edge"]
    assert await cli(argv, sync.cmd_mark, fake(answer)) == 0
    assert capsys.readouterr().out == "marked project p1 for sync to @tier=edge\n"
    assert (
        await cli(["sync", "accept", *connection(), "Denver"], sync.cmd_accept, fake(answer)) == 0
    )
    assert "approved Denver ahead" in capsys.readouterr().out
