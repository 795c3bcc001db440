"""The alarms API's queries and records: filters and limits, who raised and cleared
what and when, the shapes refused, and a region operator at a site of its region or
not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings
from edgefed.testkit.inprocess_fleet import admin, ctx_of
from edgefed.testkit.tokens import forge_token


async def raise_alarm(site: InProcessSite, **alarm: Any) -> httpx.Response:
    body = {"severity": "minor", "entity": "rack=1", "reason": "fan", **alarm}
    return await site.client.post("/edge/v1/alarms", json={"alarm": body}, headers=admin(site))


async def listed(site: InProcessSite, query: str = "") -> list[dict[str, Any]]:
    r = await site.client.get(f"/edge/v1/alarms{query}", headers=admin(site))
    assert r.status_code == 200, r.text
    alarms: list[dict[str, Any]] = r.json()["alarms"]
    return alarms


async def test_filters_by_state_type_entity_and_a_limit(site: InProcessSite) -> None:
    first = (await raise_alarm(site, entity="rack=1")).json()["alarm"]
    await raise_alarm(site, entity="rack=2", type="power", severity="major")
    await raise_alarm(site, entity="rack=3", type="power")
    await site.client.post(f"/edge/v1/alarms/{first['id']}/clear", headers=admin(site))
    assert {a["entity"] for a in await listed(site)} == {"rack=2", "rack=3"}
    assert {a["entity"] for a in await listed(site, "?state=all")} == {"rack=1", "rack=2", "rack=3"}
    assert [a["entity"] for a in await listed(site, "?state=cleared")] == ["rack=1"]
    assert [a["entity"] for a in await listed(site, "?type=power&entity=rack=3")] == ["rack=3"]
    assert len(await listed(site, "?state=all&limit=2")) == 2
    assert (
        await site.client.get("/edge/v1/alarms?limit=0", headers=admin(site))
    ).status_code == 400


async def test_an_alarm_records_who_raised_and_cleared_it_and_when(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    async with run_site(site_settings(tmp_path / "b"), clock=lambda: now[0]) as site:
        r = await raise_alarm(site)
        alarm = r.json()["alarm"]
        assert alarm["type"] == "operator" and alarm["raised_by"] == "admin"
        assert alarm["raised_at"] == "2027-01-15T08:00:00+00:00"
        assert alarm["cleared_at"] is None and alarm["cleared_by"] is None
        now[0] += 90.0
        eve = {"X-Auth-Token": forge_token(ctx_of(site), user="eve", project="ops")}
        r = await site.client.post(f"/edge/v1/alarms/{alarm['id']}/clear", headers=eve)
        cleared = r.json()["alarm"]
        assert (cleared["state"], cleared["cleared_by"]) == ("cleared", "eve")
        assert cleared["cleared_at"] == "2027-01-15T08:01:30+00:00"
        r = await site.client.get(f"/edge/v1/alarms/{alarm['id']}", headers=admin(site))
        assert r.json()["alarm"] == cleared
        r = await site.client.post(f"/edge/v1/alarms/{alarm['id']}/clear", headers=eve)
        assert r.status_code == 409
        assert "was already cleared at 2027-01-15T08:01:30+00:00" in r.text


async def test_raising_the_same_condition_again_updates_it_in_place(site: InProcessSite) -> None:
    first = (await raise_alarm(site, reason="fan slow")).json()["alarm"]
    r = await raise_alarm(site, reason="fan stopped", severity="major")
    assert r.status_code == 200
    again = r.json()["alarm"]
    assert again["id"] == first["id"]
    assert (again["reason"], again["severity"]) == ("fan stopped", "major")
    assert len(await listed(site)) == 1


async def test_shapes_that_are_refused(site: InProcessSite) -> None:
    for alarm in (
        {"type": "Has Spaces"},
        {"type": "9starts-with-a-digit"},
        {"reason": ""},
        {"reason": "x" * 2001},
        {"entity": "x" * 256},
        {"colour": "red"},
    ):
        r = await raise_alarm(site, **alarm)
        assert r.status_code == 400, alarm
    r = await site.client.get("/edge/v1/alarms/no-such-alarm", headers=admin(site))
    assert r.status_code == 404
    assert "Alarm no-such-alarm could not be found at site Berlin." in r.text


async def test_a_region_operator_uses_the_alarms_of_its_regions_sites_only(
    tmp_path: Path,
) -> None:
    async with run_site(site_settings(tmp_path / "b", labels={"region": "eu"})) as site:
        ctx = ctx_of(site)
        eu = {"X-Auth-Token": forge_token(ctx, user="eve", project="ops", role="region:eu")}
        us = {"X-Auth-Token": forge_token(ctx, user="sam", project="ops", role="region:us")}
        r = await site.client.post(
            "/edge/v1/alarms",
            json={"alarm": {"severity": "minor", "entity": "rack=1", "reason": "fan"}},
            headers=eu,
        )
        assert r.status_code == 201 and r.json()["alarm"]["raised_by"] == "eve"
        assert (await site.client.get("/edge/v1/alarms", headers=eu)).status_code == 200
        r = await site.client.get("/edge/v1/alarms", headers=us)
        assert r.status_code == 403
        assert "Site Berlin (region eu) is outside the region(s) of this operator: us" in r.text
