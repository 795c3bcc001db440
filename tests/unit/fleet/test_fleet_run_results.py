"""Remote control's own part: which API a path belongs to, and one result per site
whatever shape the router's answer took; then a run on this site alone."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from edgefed.core.errors import ValidationFailed
from edgefed.services.fleet.run import per_site, service_of
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.inprocess_fleet import admin


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/compute/v2.1/flavors", "compute"),
        ("/image/v2/images", "image"),
        ("/network/v2.0/networks", "network"),
        ("/volume/v3/volumes", "volume"),
        ("/identity/v3/projects", "identity"),
        ("/edge/v1/alarms", "fleet"),
    ],
)
def test_a_path_names_its_service(path: str, service: str) -> None:
    assert service_of(path) == service


@pytest.mark.parametrize("path", ["/compute", "/metrics", "/dashboard/", "/edgy/x", "//compute/x"])
def test_a_path_of_no_api_is_refused_naming_the_apis(path: str) -> None:
    with pytest.raises(ValidationFailed, match="belongs to no API of the site") as info:
        service_of(path)
    assert info.value.field == "path"


def test_the_routers_per_site_results_are_taken_as_they_are() -> None:
    results = [{"site": "Paris", "status": 201}, {"site": "Rome", "status": 409, "error": "taken"}]
    body = {"os-scope:results": results, "flavor": {}}
    assert per_site(httpx.Response(409), body, ("Paris", "Rome")) == results


def test_sites_that_answered_are_named_by_the_site_header() -> None:
    response = httpx.Response(200, headers={"x-edgefed-site": "Paris,Rome"})
    assert per_site(response, {"flavors": []}, ("Paris", "Rome", "Oslo")) == [
        {"site": "Paris", "status": 200},
        {"site": "Rome", "status": 200},
    ]


def test_a_failure_without_a_site_header_is_the_first_sites_with_the_message() -> None:
    body: Any = {"conflictingRequest": {"code": 409, "message": "Flavor edge.small exists"}}
    assert per_site(httpx.Response(409), body, ("Paris", "Rome")) == [
        {"site": "Paris", "status": 409, "error": "Flavor edge.small exists"}
    ]
    # A body without a message: the HTTP reason.
    assert per_site(httpx.Response(502), "<html>", ("Paris",)) == [
        {"site": "Paris", "status": 502, "error": "Bad Gateway"}
    ]


async def test_a_run_on_this_site_alone(site: InProcessSite) -> None:
    run = {
        "run": {
            "scope": "Berlin",
            "method": "POST",
            "path": "/edge/v1/alarms",
            "body": {"alarm": {"severity": "minor", "entity": "rack=1", "reason": "fan"}},
        }
    }
    r = await site.client.post("/edge/v1/fleet/run", json=run, headers=admin(site))
    assert r.status_code == 200, r.text
    body = r.json()["run"]
    assert body["ok"] and body["status"] == 201 and body["sites"] == ["Berlin"]
    assert body["results"] == [{"site": "Berlin", "status": 201}]
    assert body["body"]["alarm"]["entity"] == "rack=1"
    # The call ran with the caller's token: the alarm says who raised it.
    assert body["body"]["alarm"]["raised_by"] == "admin"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"method": "TRACE"}, "method"),
        ({"path": "edge/v1/alarms"}, "path"),
        ({"scope": ""}, "scope"),
        ({"extra": 1}, "extra"),
    ],
)
async def test_a_run_that_makes_no_sense_is_a_400(
    site: InProcessSite, change: dict[str, Any], message: str
) -> None:
    spec = {"scope": "Berlin", "method": "GET", "path": "/edge/v1/alarms", **change}
    r = await site.client.post("/edge/v1/fleet/run", json={"run": spec}, headers=admin(site))
    assert r.status_code == 400, r.text
    assert message in r.json()["error"]["message"]


async def test_a_run_needs_a_token(site: InProcessSite) -> None:
    run = {"run": {"scope": "Berlin", "method": "GET", "path": "/edge/v1/alarms"}}
    assert (await site.client.post("/edge/v1/fleet/run", json=run)).status_code == 401
