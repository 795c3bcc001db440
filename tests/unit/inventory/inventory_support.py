"""What the inventory tests share besides fixtures: a hand-moved clock and admin tokens
signed by the site's own key (imported by name: a ``conftest`` import would pick whichever
conftest module the worker loaded first), and agents of a qemu site played over HTTP."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from edgefed.core.tokens import new_audit_id
from edgefed.store.image import ImageRepository
from edgefed.testkit.inprocess import InProcessSite, site_settings
from edgefed.testkit.wait import eventually


class FakeClock:
    """The site clock, moved by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def signed_token(site: InProcessSite, *, roles: tuple[str, ...] = ("admin",)) -> str:
    ctx = site.app.state.ctx
    now = ctx.clock()
    claims: dict[str, Any] = {
        "iss": ctx.name,
        "iat": now,
        "exp": now + 3600,
        "jti": new_audit_id(),
        "chain": new_audit_id(),
        "methods": ["password"],
        "user": {"id": "u-test", "name": "tester", "domain": {"id": "default", "name": "Default"}},
        "project": {
            "id": "p-test",
            "name": "admin",
            "domain": {"id": "default", "name": "Default"},
        },
        "roles": [{"id": f"r-{r}", "name": r} for r in roles],
    }
    return str(ctx.signer.sign(claims))


# -- agents of a qemu site, played by the test over HTTP --------------------------------

HOSTS = "/edge/v1/hosts"
AGENT = f"{HOSTS}/agent"
HW = {"cpus": 8, "memory_mb": 16384, "disks": [{"name": "sda", "size_gb": 240}], "nics": []}
V = {"OpenStack-API-Version": "compute 2.96"}


def qemu_settings(tmp_path: Path, **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "compute_driver": "qemu",
        "local_agent": False,
        "host_heartbeat_timeout_seconds": 30.0,
        "agent_spawn_timeout_seconds": 10.0,
        "agent_command_timeout_seconds": 10.0,
        "agent_poll_wait_seconds": 0.5,
        **overrides,
    }
    return site_settings(tmp_path / "site", **values)


async def agent_headers(site: InProcessSite, hostname: str) -> dict[str, str]:
    admin = {"X-Auth-Token": signed_token(site)}
    r = await site.client.post(
        f"{HOSTS}/enrollment-tokens",
        json={"hostname": hostname, "personality": "worker"},
        headers=admin,
    )
    token = r.json()["enrollment_token"]["token"]
    r = await site.client.post(
        f"{AGENT}/enroll", json={"enrollment_token": token, "hostname": hostname, "hardware": HW}
    )
    assert r.status_code == 201, r.text
    headers = {"X-Host-Credential": r.json()["credential"]}
    r = await site.client.post(f"{HOSTS}/{hostname}/unlock", headers=admin)
    assert r.status_code == 200, r.text
    return headers


async def poll(site: InProcessSite, headers: dict[str, str], **body: Any) -> list[dict[str, Any]]:
    r = await site.client.post(f"{AGENT}/commands", json={"wait": 0.5, **body}, headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json()["commands"])


async def command_for(
    site: InProcessSite, hosts: list[dict[str, str]], **body: Any
) -> tuple[dict[str, str], dict[str, Any]]:
    """The next command for one of ``hosts``: (that host's headers, the command)."""
    found: list[tuple[dict[str, str], dict[str, Any]]] = []

    async def got() -> bool:
        for headers in hosts:
            found.extend((headers, c) for c in await poll(site, headers, **body))
        return bool(found)

    what = "a command for the agent" if len(hosts) == 1 else "a command for an agent"
    await eventually(got, within=10, what=what)
    return found[0]


async def poll_until(site: InProcessSite, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    """The next command for the agent of ``headers``."""
    return (await command_for(site, [headers], **body))[1]


async def answer(site: InProcessSite, headers: dict[str, str], command_id: str, **body: Any) -> int:
    r = await site.client.post(f"{AGENT}/commands/{command_id}", json=body, headers=headers)
    return r.status_code


async def boot(site: InProcessSite, name: str = "vm") -> str:
    ctx = site.app.state.ctx
    image = await ImageRepository(ctx.store).create(
        owner=None,
        name="tiny",
        disk_format="qcow2",
        container_format="bare",
        visibility="public",
        data=b"qcow2 stand-in" * 64,
        data_dir=site.settings.data_dir,
    )
    headers = {"X-Auth-Token": await site.token(), **V}
    server = {"name": name, "imageRef": image.id, "flavorRef": "1", "networks": "auto"}
    r = await site.client.post("/compute/v2.1/servers", json={"server": server}, headers=headers)
    assert r.status_code == 202, r.text
    return str(r.json()["server"]["id"])


async def server(site: InProcessSite, server_id: str) -> dict[str, Any]:
    headers = {"X-Auth-Token": await site.token(), **V}
    r = await site.client.get(f"/compute/v2.1/servers/{server_id}", headers=headers)
    assert r.status_code == 200, r.text
    return dict(r.json()["server"])


async def reaches(site: InProcessSite, server_id: str, status: str, within: float = 10) -> dict:
    last: dict[str, Any] = {}

    async def check() -> bool:
        last.update(await server(site, server_id))
        return bool(last["status"] == status)

    await eventually(check, within=within, every=0.02, what=f"{server_id} {status}")
    return last
