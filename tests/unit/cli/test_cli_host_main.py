"""``edgefed host`` operator commands against a fake inventory (what is sent for what is
typed, what is printed), logging in, ``edgefed site rotate-key``, and ``main`` itself."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from cli_kit import SITE, LoopBridge, connection, parse

from edgefed.cli import host
from edgefed.cli.main import build_parser, main
from edgefed.core.ed25519 import Ed25519PrivateKey
from edgefed.core.files import write_private

HOST = {
    "id": "h1",
    "hostname": "edge-1",
    "personality": "edgeworker",
    "mgmt_ip": "192.168.204.10",
    "administrative": "locked",
    "availability": "online",
    "labels": {"rack": "2"},
}


class Inventory:
    """A fake site: the inventory answers what the test set, every request is kept."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.hosts: list[dict[str, Any]] = [HOST]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/identity/v3/auth/tokens":
            body = json.loads(request.content)
            password = body["auth"]["identity"]["password"]["user"]["password"]
            if password != "pw":
                return httpx.Response(401, json={"error": {"message": "Invalid credentials"}})
            return httpx.Response(201, headers={"x-subject-token": "fresh"}, json={})
        if path == "/edge/v1/hosts" and request.method == "GET":
            wanted = request.url.params.get("personality")
            hosts = [h for h in self.hosts if wanted in (None, h["personality"])]
            return httpx.Response(200, json={"hosts": hosts})
        if path == "/edge/v1/hosts/enrollment-tokens":
            return httpx.Response(201, json={"enrollment_token": {"token": "HT1.secret"}})
        if path.startswith("/edge/v1/hosts/") and request.method == "GET":
            name = path.rsplit("/", 1)[-1]
            found = [h for h in self.hosts if name in (h["id"], h["hostname"])]
            if not found:
                return httpx.Response(404, json={"error": {"message": f"Host {name} not found"}})
            return httpx.Response(200, json={"host": found[0]})
        if request.method == "DELETE":
            return httpx.Response(204)
        return httpx.Response(200, json={"host": HOST})

    def sent(self) -> list[tuple[str, str, Any]]:
        return [
            (
                r.method,
                r.url.path + (f"?{r.url.query.decode()}" if r.url.query else ""),
                json.loads(r.content) if r.content else None,
            )
            for r in self.requests
        ]


async def host_cli(argv: list[str], inventory: Inventory) -> int:
    args = parse(argv)
    bridge = LoopBridge(httpx.MockTransport(inventory), asyncio.get_running_loop())
    return await asyncio.to_thread(host.run_operator, args, transport=bridge)


async def test_add_sends_what_was_typed_and_prints_the_host(
    capsys: pytest.CaptureFixture[str],
) -> None:
    inventory = Inventory()
    argv = [
        "host",
        "add",
        *connection(),
        "-n",
        "edge-1",
        "-p",
        "edgeworker",
        "--mgmt-ip",
        "192.168.204.10",
        "--label",
        "rack=2",
        "--label",
        "row=a=b",
    ]
    assert await host_cli(argv, inventory) == 0
    [(method, path, body)] = inventory.sent()
    assert (method, path) == ("POST", "/edge/v1/hosts")
    assert body == {
        "hostname": "edge-1",
        "personality": "edgeworker",
        "mgmt_ip": "192.168.204.10",
        "labels": {"rack": "2", "row": "a=b"},
    }
    assert inventory.requests[0].headers["x-auth-token"] == "tok"
    out = capsys.readouterr().out
    assert "| Field " in out and '{"rack": "2"}' in out and "| hostname       | edge-1" in out


async def test_update_reads_numbers_and_clears_with_an_empty_value(
    capsys: pytest.CaptureFixture[str],
) -> None:
    inventory = Inventory()
    argv = ["host", "update", *connection(), "edge-1", "cpu_allocation_ratio=2.5", "bm_ip="]
    assert await host_cli(argv, inventory) == 0
    assert inventory.sent() == [
        ("PATCH", "/edge/v1/hosts/edge-1", {"cpu_allocation_ratio": 2.5, "bm_ip": None})
    ]
    for bad, message in (
        (["ram_allocation_ratio=lots"], "ram_allocation_ratio must be a number, got 'lots'"),
        (["personality"], "attribute must be KEY=VALUE, got 'personality'"),
        ([], "give at least one attribute to update"),
    ):
        inventory.requests.clear()
        assert await host_cli(["host", "update", *connection(), "edge-1", *bad], inventory) == 1
        assert message in capsys.readouterr().err
        assert inventory.requests == []


async def test_labels_lock_upgrade_and_delete_go_to_their_paths(
    capsys: pytest.CaptureFixture[str],
) -> None:
    inventory = Inventory()
    for argv in (
        ["host", "label", *connection(), "edge-1", "zone=a", "--remove", "rack"],
        ["host", "lock", *connection(), "edge-1"],
        ["host", "unlock", *connection(), "edge-1"],
        ["host", "upgrade", *connection(), "edge-1", "--load", "24.09"],
        ["host", "delete", *connection(), "edge-1"],
    ):
        assert await host_cli(argv, inventory) == 0
    assert inventory.sent() == [
        ("POST", "/edge/v1/hosts/edge-1/labels", {"labels": {"zone": "a"}, "remove": ["rack"]}),
        ("POST", "/edge/v1/hosts/edge-1/lock", None),
        ("POST", "/edge/v1/hosts/edge-1/unlock", None),
        ("POST", "/edge/v1/hosts/edge-1/upgrade", {"load": "24.09"}),
        ("DELETE", "/edge/v1/hosts/edge-1", None),
    ]
    capsys.readouterr()
    assert await host_cli(["host", "label", *connection(), "edge-1", "zone"], inventory) == 1
    assert "label must be KEY=VALUE, got 'zone'" in capsys.readouterr().err


async def test_list_as_a_table_or_json_and_show_a_missing_host(
    capsys: pytest.CaptureFixture[str],
) -> None:
    inventory = Inventory()
    assert (
        await host_cli(["host", "list", *connection(), "--personality", "edgeworker"], inventory)
        == 0
    )
    out = capsys.readouterr().out
    header = [c.strip() for c in out.splitlines()[1].strip("|").split("|")]
    assert header == list(host.COLUMNS)
    assert "edge-1" in out and "192.168.204.10" in out
    assert inventory.sent()[-1][1] == "/edge/v1/hosts?personality=edgeworker"
    assert await host_cli(["host", "list", *connection(), "-f", "json"], inventory) == 0
    assert json.loads(capsys.readouterr().out) == [HOST]
    assert await host_cli(["host", "show", *connection(), "edge-9"], inventory) == 1
    assert capsys.readouterr().err == "edgefed: Host edge-9 not found (HTTP 404)\n"


async def test_an_enrollment_token_is_printed_alone(capsys: pytest.CaptureFixture[str]) -> None:
    inventory = Inventory()
    argv = ["host", "enroll-token", *connection(), "--hostname", "edge-2", "--ttl", "60"]
    assert await host_cli(argv, inventory) == 0
    assert capsys.readouterr().out == "HT1.secret\n"
    assert inventory.sent() == [
        ("POST", "/edge/v1/hosts/enrollment-tokens", {"ttl_seconds": 60, "hostname": "edge-2"})
    ]


async def test_a_password_login_comes_first_and_its_token_is_used() -> None:
    inventory = Inventory()
    argv = [
        "host",
        "list",
        "--os-auth-url",
        f"{SITE}/identity/v3",
        "--os-password",
        "pw",
        "--os-username",
        "ops",
        "--os-project-name",
        "infra",
    ]
    assert await host_cli(argv, inventory) == 0
    login, listing = inventory.requests
    assert str(login.url) == f"{SITE}/identity/v3/auth/tokens"
    auth = json.loads(login.content)["auth"]
    assert auth["identity"]["password"]["user"]["name"] == "ops"
    assert auth["scope"]["project"]["name"] == "infra"
    # The site URL comes from the auth URL, without its /identity/v3.
    assert str(listing.url) == f"{SITE}/edge/v1/hosts"
    assert listing.headers["x-auth-token"] == "fresh"


async def test_a_failed_login_and_missing_credentials_are_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    inventory = Inventory()
    argv = ["host", "list", "--site-url", SITE, "--os-password", "wrong"]
    assert await host_cli(argv, inventory) == 1
    assert capsys.readouterr().err == "edgefed: login failed (401): Invalid credentials\n"
    assert await host_cli(["host", "list", "--site-url", SITE], inventory) == 1
    assert "give --os-token or --os-password" in capsys.readouterr().err
    assert await host_cli(["host", "list", "--os-token", "t"], inventory) == 1
    assert "give --site-url (or EDGEFED_SITE_URL, or OS_AUTH_URL)" in capsys.readouterr().err


async def test_the_environment_supplies_the_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EDGEFED_SITE_URL", "http://paris.test/")
    monkeypatch.setenv("OS_TOKEN", "from-env")
    inventory = Inventory()
    assert await host_cli(["host", "list"], inventory) == 0
    [request] = inventory.requests
    assert str(request.url) == "http://paris.test/edge/v1/hosts"
    assert request.headers["x-auth-token"] == "from-env"


async def test_provision_writes_a_bundle_for_an_edgeworker_and_its_controllers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = Inventory()
    controller = {
        **HOST,
        "id": "c1",
        "hostname": "ctl-1",
        "personality": "controller",
        "mgmt_ip": "192.168.204.2",
    }
    inventory.hosts = [HOST, controller]
    out_dir = tmp_path / "bundle"
    argv = [
        "host",
        "provision",
        *connection(),
        "edge-1",
        "--output",
        str(out_dir),
        "--ntp-server",
        "ntp.example",
        "--interface",
        "eth1",
        "--become",
    ]
    assert await host_cli(argv, inventory) == 0
    assert f"wrote {out_dir / 'edgeworker.yml'}" in capsys.readouterr().out
    written = yaml.safe_load((out_dir / "inventory.yml").read_text())["all"]
    assert written["children"]["controllers"]["hosts"] == {
        "ctl-1": {"ansible_host": "192.168.204.2"}
    }
    worker = written["children"]["edgeworkers"]["hosts"]["edge-1"]
    assert worker == {
        "ansible_host": "192.168.204.10",
        "edgefed_mgmt_ip": "192.168.204.10",
        "edgefed_mgmt_interface": "eth1",
    }
    assert written["vars"]["edgefed_controller_address"] == "192.168.204.2"
    assert written["vars"]["edgefed_ntp_servers"] == ["ntp.example"]
    assert written["vars"]["ansible_become"] is True
    assert written["vars"]["edgefed_site"] == SITE


async def test_provision_refuses_what_is_not_an_edgeworker_or_lacks_a_cluster(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = Inventory()
    inventory.hosts = [{**HOST, "personality": "storage"}]
    argv = ["host", "provision", *connection(), "edge-1", "--output", str(tmp_path / "b")]
    assert await host_cli(argv, inventory) == 1
    assert "edge-1 is a storage, not an edgeworker" in capsys.readouterr().err
    inventory.hosts = [HOST]  # no controller, no --kubernetes-version
    assert await host_cli(argv, inventory) == 1
    assert "give the Kubernetes version of the cluster" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


# ---- edgefed site rotate-key, and main -----------------------------------------------------


def stopped_site(data_dir: Path, name: str = "Berlin") -> None:
    write_private(data_dir / "keys" / "signing.pem", Ed25519PrivateKey.generate().to_pem())
    write_private(data_dir / "keys" / "site-name", name.encode())


def test_rotate_key_prints_the_new_key_and_refuses_a_second_pending_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stopped_site(tmp_path / "berlin")
    assert main(["site", "rotate-key", "--data-dir", str(tmp_path / "berlin")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("new key ") and "start the site to publish it" in out
    assert main(["site", "rotate-key", "--data-dir", str(tmp_path / "berlin")]) == 1
    assert "cannot rotate the key: a rotation is already pending" in capsys.readouterr().out


def test_rotate_key_finds_the_data_directory_in_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stopped_site(tmp_path / "paris", "Paris")
    config = tmp_path / "site.toml"
    config.write_text(f'name = "Paris"\ndata_dir = "{tmp_path / "paris"}"\nadmin_password = "x"\n')
    assert main(["site", "rotate-key", "--config", str(config)]) == 0
    assert (tmp_path / "paris" / "keys" / "rotation.json").exists()
    assert main(["site", "rotate-key"]) == 2
    assert "give --data-dir or --config" in capsys.readouterr().out
    assert main(["site", "rotate-key", "--data-dir", str(tmp_path / "nothing")]) == 1
    assert "holds no site" in capsys.readouterr().out


def test_version_and_a_missing_command(capsys: pytest.CaptureFixture[str]) -> None:
    from edgefed import __version__

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"edgefed {__version__}"
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    assert "usage: edgefed" in capsys.readouterr().err


def test_only_the_command_run_gets_its_arguments_built() -> None:
    lazy = build_parser(["alarms", "list"])
    assert lazy.parse_args(["alarms", "list", "--type", "power"]).type == "power"
    with pytest.raises(SystemExit):
        lazy.parse_args(["host", "list"])  # listed by name only
    full = build_parser()
    assert full.parse_args(["host", "list", "--personality", "x"]).personality == "x"


def test_an_operator_command_without_a_site_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fleet", "status"]) == 1
    assert capsys.readouterr().err == (
        "edgefed: give --site-url (or EDGEFED_SITE_URL, or OS_AUTH_URL)\n"
    )
    assert main(["host", "list", "--site-url", "http://127.0.0.1:1", "--os-token", "t"]) == 1
    assert "edgefed: cannot reach the site:" in capsys.readouterr().err
