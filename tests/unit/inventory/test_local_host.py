"""The all-in-one site's own host, made ready at every start of a qemu site with
``local_agent``: the host ``<site>-local`` exists and is unlocked, and while no agent
enrolled for it a one-time token waits in ``<data_dir>/agent/enroll-token``, readable
by its owner only; once the agent enrolled, the file is gone and its credential stays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings

HOSTS = "/edge/v1/hosts"
HW = {"cpus": 4, "memory_mb": 8192, "disks": [{"name": "vda", "size_gb": 40}], "nics": []}


def settings(tmp_path: Path, **overrides: Any) -> Any:
    values: dict[str, Any] = {"compute_driver": "qemu", "agent_poll_wait_seconds": 0.2}
    return site_settings(tmp_path / "site", **{**values, **overrides})


async def hosts(site: InProcessSite) -> dict[str, dict[str, Any]]:
    r = await site.client.get(HOSTS, headers={"X-Auth-Token": await site.token()})
    assert r.status_code == 200, r.text
    return {h["hostname"]: h for h in r.json()["hosts"]}


async def enroll(site: InProcessSite, token: str, hostname: str) -> Any:
    body = {"enrollment_token": token, "hostname": hostname, "hardware": HW}
    return await site.client.post(f"{HOSTS}/agent/enroll", json=body)


def token_file(tmp_path: Path) -> Path:
    return tmp_path / "site" / "agent" / "enroll-token"


async def test_a_qemu_site_readies_its_own_host_and_a_token_for_its_agent(
    tmp_path: Path,
) -> None:
    async with run_site(settings(tmp_path)) as site:
        local = (await hosts(site))["berlin-local"]
        assert (local["personality"], local["administrative"]) == ("worker", "unlocked")
        path = token_file(tmp_path)
        assert path.stat().st_mode & 0o777 == 0o600
        assert path.parent.stat().st_mode & 0o777 == 0o700

        r = await enroll(site, path.read_text().strip(), "berlin-local")
        assert r.status_code == 201, r.text
        assert r.json()["host"]["capacity"]["vcpus"] == 4


async def test_once_its_agent_enrolled_a_restart_leaves_no_token_behind(
    tmp_path: Path,
) -> None:
    async with run_site(settings(tmp_path)) as site:
        r = await enroll(site, token_file(tmp_path).read_text().strip(), "berlin-local")
        credential = r.json()["credential"]
        host_id = (await hosts(site))["berlin-local"]["id"]

    async with run_site(settings(tmp_path)) as site:
        assert not token_file(tmp_path).exists()
        assert (await hosts(site))["berlin-local"]["id"] == host_id  # the same host
        r = await site.client.post(
            f"{HOSTS}/agent/heartbeat",
            json={"hardware": HW},
            headers={"X-Host-Credential": credential},
        )
        assert r.status_code == 200, r.text


async def test_a_restart_before_the_agent_enrolled_unlocks_the_host_with_a_new_token(
    tmp_path: Path,
) -> None:
    async with run_site(settings(tmp_path)) as site:
        first = token_file(tmp_path).read_text().strip()
        admin = {"X-Auth-Token": await site.token()}
        r = await site.client.post(f"{HOSTS}/berlin-local/lock", headers=admin)
        assert r.status_code == 200, r.text

    async with run_site(settings(tmp_path)) as site:
        assert (await hosts(site))["berlin-local"]["administrative"] == "unlocked"
        second = token_file(tmp_path).read_text().strip()
        assert second != first
        assert (await enroll(site, second, "berlin-local")).status_code == 201


async def test_the_host_is_named_by_the_setting_and_only_with_a_local_agent(
    tmp_path: Path,
) -> None:
    async with run_site(settings(tmp_path / "a", local_agent_hostname="rack-7")) as site:
        assert set(await hosts(site)) == {"rack-7"}
    async with run_site(settings(tmp_path / "b", local_agent=False)) as site:
        assert await hosts(site) == {}
        assert not (tmp_path / "b" / "site" / "agent").exists()
    async with run_site(site_settings(tmp_path / "c" / "site")) as site:  # the fake driver
        assert await hosts(site) == {}
