"""``os-getConsoleOutput`` as Nova answers it: lengths, filtering, who may, 404 and 409."""

from __future__ import annotations

from typing import Any

import pytest
from compute_testkit import V, boot, wait_for

from edgefed.core.ids import predictable_id
from edgefed.drivers.base import HostUnavailable
from edgefed.services.compute.consoles import last_lines, parse_length
from edgefed.services.compute.state import ComputeState
from edgefed.testkit.inprocess import InProcessSite
from edgefed.testkit.tokens import forge_token

C = "/compute/v2.1"
FULL = "fake console of vm\npower state RUNNING\n"


def state_of(site: InProcessSite) -> ComputeState:
    return site.app.state.ctx.slots.require(ComputeState)


def headers_of(site: InProcessSite, project: str, role: str = "member") -> dict[str, str]:
    token = forge_token(site.app.state.ctx, user=f"u-{project}-{role}", project=project, role=role)
    return {"X-Auth-Token": token, **V}


async def console(
    site: InProcessSite, headers: dict[str, str], server_id: str, body: Any = None
) -> Any:
    payload = {"os-getConsoleOutput": {} if body is None else body}
    return await site.client.post(f"{C}/servers/{server_id}/action", json=payload, headers=headers)


async def active_server(site: InProcessSite, headers: dict[str, str], image_id: str) -> str:
    created = await boot(site, headers, image_id)
    await wait_for(site, headers, created["id"], "ACTIVE")
    return str(created["id"])


async def test_console_output_whole_and_tail(site, h, image_id):
    sid = await active_server(site, h, image_id)
    r = await console(site, h, sid)
    assert r.status_code == 200, r.text
    assert r.json() == {"output": FULL}
    for length in (None, -1, "-1"):
        r = await console(site, h, sid, {"length": length})
        assert r.json() == {"output": FULL}, length
    # Nova's tail: the last N pieces split at newlines, the last one empty here.
    for length in (2, "2"):
        r = await console(site, h, sid, {"length": length})
        assert r.json() == {"output": "power state RUNNING\n"}, length
    assert (await console(site, h, sid, {"length": 1})).json() == {"output": ""}
    assert (await console(site, h, sid, {"length": 0})).json() == {"output": ""}
    assert (await console(site, h, sid, {"length": 50})).json() == {"output": FULL}
    # Reading the console is no instance action.
    actions = await site.client.get(f"{C}/servers/{sid}/os-instance-actions", headers=h)
    assert [a["action"] for a in actions.json()["instanceActions"]] == ["create"]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"length": 2.5}, "is not of type 'integer', 'string', 'null'"),
        ({"length": True}, "is not of type 'integer', 'string', 'null'"),
        ({"length": [1]}, "is not of type 'integer', 'string', 'null'"),
        ({"length": "NaN"}, "does not match '^-?[0-9]+$'"),
        ({"length": "2.5"}, "does not match '^-?[0-9]+$'"),
        ({"length": -2}, "-2 is less than the minimum of -1"),
        ({"length": "-7"}, "-7 is less than the minimum of -1"),
    ],
)
async def test_console_output_refuses_bad_lengths(site, h, image_id, body, says):
    sid = await active_server(site, h, image_id)
    r = await console(site, h, sid, body)
    assert r.status_code == 400, r.text
    message = r.json()["badRequest"]["message"]
    assert message.startswith("Invalid input for field/attribute length.") and says in message


async def test_console_output_refuses_a_body_that_is_not_an_object(site, h, image_id):
    sid = await active_server(site, h, image_id)
    r = await console(site, h, sid, {"lenght": 3})
    assert r.status_code == 400
    assert "'lenght' was unexpected" in r.json()["badRequest"]["message"]
    r = await site.client.post(
        f"{C}/servers/{sid}/action", json={"os-getConsoleOutput": "all"}, headers=h
    )
    assert r.status_code == 400
    assert "is not of type 'object'" in r.json()["badRequest"]["message"]
    r = await site.client.post(
        f"{C}/servers/{sid}/action", json={"os-getConsoleOutput": None}, headers=h
    )
    assert r.status_code == 200 and r.json() == {"output": FULL}


async def test_console_output_keeps_tabs_and_newlines_only(site, h, image_id, monkeypatch):
    sid = await active_server(site, h, image_id)

    async def noisy(instance_id: str, *, lines: int | None = None) -> str:
        return "boot\r\n\x1b[32mOK\x1b[0m\tdone\x00\nlogin: \x07\n"

    monkeypatch.setattr(state_of(site).driver, "console_output", noisy)
    r = await console(site, h, sid)
    assert r.json() == {"output": "boot\n[32mOK[0m\tdone\nlogin: \n"}
    # A driver that ignores ``lines`` is cut here, as Tempest counts: 3 pieces.
    r = await console(site, h, sid, {"length": 3})
    assert r.json() == {"output": "[32mOK[0m\tdone\nlogin: \n"}
    assert len(r.json()["output"].split("\n")) == 3


async def test_console_output_of_a_stopped_or_locked_server(site, h, image_id):
    project = predictable_id("project", "alpha")
    member = headers_of(site, project)
    sid = await active_server(site, member, image_id)
    r = await site.client.post(f"{C}/servers/{sid}/action", json={"os-stop": None}, headers=h)
    assert r.status_code == 202
    await wait_for(site, h, sid, "SHUTOFF")
    assert (await console(site, member, sid)).json()["output"].endswith("SHUTDOWN\n")
    r = await site.client.post(f"{C}/servers/{sid}/action", json={"lock": None}, headers=h)
    assert r.status_code == 202
    r = await console(site, member, sid)
    assert r.status_code == 200, r.text


async def test_console_output_who_may(site, h, image_id):
    alpha = predictable_id("project", "alpha")
    sid = await active_server(site, headers_of(site, alpha), image_id)
    assert (await console(site, headers_of(site, alpha), sid)).status_code == 200
    r = await console(site, headers_of(site, alpha, role="reader"), sid)
    assert r.status_code == 403
    assert "os_compute_api:os-console-output" in r.json()["forbidden"]["message"]
    # Another project's server does not exist for the caller.
    r = await console(site, headers_of(site, predictable_id("project", "beta")), sid)
    assert r.status_code == 404
    assert r.json()["itemNotFound"]["message"] == f"Instance {sid} could not be found."
    assert (await console(site, h, sid)).status_code == 200


async def test_console_output_404_and_409(site, h, image_id):
    missing = predictable_id("server", "missing")
    r = await console(site, h, missing)
    assert r.status_code == 404
    assert r.json()["itemNotFound"]["message"] == f"Instance {missing} could not be found."
    # A server that never got a host has no console yet.
    body = {"flavor": {"name": "huge", "ram": 10**7, "vcpus": 1, "disk": 1}}
    flavor = (await site.client.post(f"{C}/flavors", json=body, headers=h)).json()["flavor"]
    admin_project = site.app.state.authenticator.validate(
        site.app.state.ctx, h["X-Auth-Token"]
    ).project_id
    r = await site.client.put(
        f"{C}/os-quota-sets/{admin_project}", json={"quota_set": {"ram": -1}}, headers=h
    )
    assert r.status_code == 200, r.text
    created = await boot(site, h, image_id, flavorRef=flavor["id"])
    await wait_for(site, h, created["id"], "ERROR")
    r = await console(site, h, created["id"])
    assert r.status_code == 409
    assert r.json()["conflictingRequest"]["message"] == f"Instance {created['id']} is not ready"
    # Placed, but the hypervisor lost the guest: no console to show.
    member = headers_of(site, predictable_id("project", "alpha"))
    sid = await active_server(site, member, image_id)
    state_of(site).driver.instances.pop(sid)  # type: ignore[attr-defined]
    r = await console(site, member, sid)
    assert r.status_code == 404
    assert r.json()["itemNotFound"]["message"] == "Guest does not have a console available."
    r = await console(site, h, sid)
    assert "not known to the fake hypervisor" in r.json()["itemNotFound"]["message"]


async def test_console_output_409_when_the_host_does_not_answer(site, h, image_id, monkeypatch):
    sid = await active_server(site, h, image_id)

    async def unreachable(instance_id: str, *, lines: int | None = None) -> str:
        raise HostUnavailable("host edge-1 is down: its agent stopped sending heartbeats")

    monkeypatch.setattr(state_of(site).driver, "console_output", unreachable)
    r = await console(site, h, sid)
    assert r.status_code == 409
    assert r.json()["conflictingRequest"]["message"] == (
        f"Cannot read the console of instance {sid}: "
        "host edge-1 is down: its agent stopped sending heartbeats"
    )


def test_parse_length_and_last_lines():
    assert parse_length(None) is None
    assert parse_length({}) is None
    assert parse_length({"length": "12"}) == 12
    assert last_lines("a\nb\nc", 2) == "b\nc"
    assert last_lines("a\nb\n", 5) == "a\nb\n"
    assert last_lines("a\nb\nc\n", 2) == "c\n"
    # What a driver that kept the last N lines hands over is cut the same.
    assert last_lines("b\nc\n", 2) == last_lines("a\nb\nc\n", 2)
