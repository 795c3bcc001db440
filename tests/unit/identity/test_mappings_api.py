"""/v3/OS-EDGE/mappings: an operator's rules for users of other fleet sites. A rule
names exactly one target, resolves names to the ids they will have, shows the role's
name, is listed and deleted by id, and only an admin touches them; the config file's
rules are replaced at each start without touching the API's."""

from __future__ import annotations

import dataclasses
from typing import Any

from identity_helpers import V3, user_with_role

from edgefed.core.ids import predictable_id
from edgefed.core.settings import MappingSpec
from edgefed.services.identity.mappings import install_config_mappings
from edgefed.testkit.inprocess import InProcessSite

MAPPINGS = f"{V3}/OS-EDGE/mappings"


async def post(site: InProcessSite, headers: dict[str, str], rule: Any) -> Any:
    return await site.client.post(MAPPINGS, json={"mapping": rule}, headers=headers)


async def listed(site: InProcessSite, headers: dict[str, str]) -> list[dict[str, Any]]:
    r = await site.client.get(MAPPINGS, headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json()["mappings"])


async def test_a_rule_resolves_names_and_shows_its_roles_name(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    r = await post(site, admin_headers, {"site": "Paris", "role": "member", "project": "lab"})
    assert r.status_code == 201, r.text
    rule = r.json()["mapping"]
    assert rule["site"] == "Paris"
    assert (rule["user_domain"], rule["user"]) == ("Default", "*")  # the defaults
    assert rule["role"] == {"id": predictable_id("role", "member", domain_id=""), "name": "member"}
    assert rule["project"] == {"id": predictable_id("project", "lab", domain_id="default")}
    assert rule["source"] == "api"
    assert len(rule["id"]) == 32
    assert [m["id"] for m in await listed(site, admin_headers)] == [rule["id"]]


async def test_a_target_given_by_id_is_kept_as_it_is(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    project_id = "0123456789abcdef0123456789abcdef"
    r = await post(site, admin_headers, {"site": "*", "role": "reader", "project": project_id})
    assert r.json()["mapping"]["project"] == {"id": project_id}
    r = await post(site, admin_headers, {"site": "*", "role": "reader", "system": True})
    assert r.json()["mapping"]["system"] == {"all": True}
    r = await post(site, admin_headers, {"site": "*", "role": "reader", "domain": "Default"})
    assert r.json()["mapping"]["domain"] == {"id": "default"}


async def test_a_rule_names_exactly_one_target(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    for targets in ({}, {"project": "a", "domain": "b"}, {"project": "a", "system": True}):
        r = await post(site, admin_headers, {"site": "Paris", "role": "member", **targets})
        assert r.status_code == 400, targets
        assert "exactly one of project, domain or system" in r.text
    assert await listed(site, admin_headers) == []


async def test_bad_fields_are_refused_by_name(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    base = {"site": "Paris", "role": "member", "project": "lab"}
    for change, field in (
        ({"site": "not a site"}, "site"),
        ({"site": ""}, "site"),
        ({"role": "x\n"}, "role"),
        ({"user": "u" * 256}, "user"),
        ({"colour": "blue"}, "colour"),
    ):
        r = await post(site, admin_headers, {**base, **change})
        assert r.status_code == 400, change
        assert field in r.json()["error"]["message"], r.text
    r = await site.client.post(MAPPINGS, json={"rule": base}, headers=admin_headers)
    assert r.status_code == 400
    assert await listed(site, admin_headers) == []


async def test_a_rule_is_deleted_once(site: InProcessSite, admin_headers: dict[str, str]) -> None:
    rule = (await post(site, admin_headers, {"site": "*", "role": "reader", "system": True})).json()
    path = f"{MAPPINGS}/{rule['mapping']['id']}"
    assert (await site.client.delete(path, headers=admin_headers)).status_code == 204
    assert (await site.client.delete(path, headers=admin_headers)).status_code == 404
    assert await listed(site, admin_headers) == []


async def test_only_an_admin_reads_or_writes_rules(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    member = await user_with_role(
        site.client, admin_headers, name="dave", role="member", project="lab"
    )
    rule = {"site": "*", "role": "admin", "system": True}
    assert (await post(site, member, rule)).status_code == 403
    assert (await site.client.get(MAPPINGS, headers=member)).status_code == 403
    made = (await post(site, admin_headers, rule)).json()["mapping"]
    r = await site.client.delete(f"{MAPPINGS}/{made['id']}", headers=member)
    assert r.status_code == 403
    assert (await site.client.get(MAPPINGS)).status_code == 401
    assert [m["id"] for m in await listed(site, admin_headers)] == [made["id"]]


async def test_config_rules_are_replaced_at_start_and_api_rules_stay(
    site: InProcessSite, admin_headers: dict[str, str]
) -> None:
    api_rule = await post(site, admin_headers, {"site": "Rome", "role": "reader", "system": True})
    ctx = site.app.state.ctx
    first = (
        MappingSpec(site="Paris", role="member", project="lab"),
        MappingSpec(site="Oslo", role="reader", domain="Default"),
    )
    for specs in (first, first[1:]):  # two starts: the second config has one rule
        settings = dataclasses.replace(ctx.settings, mapping=specs)
        await install_config_mappings(dataclasses.replace(ctx, settings=settings))
    rules = await listed(site, admin_headers)
    assert sorted((m["site"], m["source"]) for m in rules) == [("Oslo", "config"), ("Rome", "api")]
    assert api_rule.json()["mapping"]["id"] in {m["id"] for m in rules}
