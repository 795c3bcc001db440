"""Encrypted, authenticated links (issue #12 item 5) on a real ``tls`` fleet of processes.

Three sites serve HTTPS behind WAN links whose URLs are their registry endpoints; sites
pin each other's keys by those origins (api/tls.py); clients see certificates from the
fleet's local CA. What a user would notice: the fleet works as before over TLS (gossip,
a scope fan-out, a sync push, the ``openstack`` CLI from a generated clouds.yaml), a
server at a pinned origin that holds another key gets nothing and the caller says why,
and plain HTTP to a TLS site gets no answer.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from edgefed.core.certs import site_certificate_pem
from edgefed.core.ed25519 import Ed25519PrivateKey
from edgefed.testkit.fleet_process import ProcessFleet
from edgefed.testkit.osc import openstack_binary

pytestmark = pytest.mark.e2e

NAMES = ["Berlin", "Denver", "Paris"]


def until(check: Callable[[], bool], *, within: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)  # bounded poll of real processes
    raise AssertionError(f"{what} not met within {within} s")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessFleet]:
    fleet = ProcessFleet(
        root=tmp_path_factory.mktemp("tls-fleet"),
        names=NAMES,
        tls=True,
        extra_config="sync_backoff_seconds = [0.2, 0.5, 1.0]\n",
    ).start()
    try:
        yield fleet
    finally:
        fleet.stop()


def admin(fleet: ProcessFleet, name: str) -> httpx.Client:
    return fleet.client(name, headers={"X-Auth-Token": fleet.token(name)})


def test_gossip_converges_with_every_endpoint_on_https(fleet: ProcessFleet) -> None:
    # start() returned: every registry lists every site, learned over pinned TLS.
    for name in NAMES:
        endpoints = {s["name"]: s["endpoint"] for s in fleet.registry_of(name)}
        assert endpoints == {n: fleet[n].public_url for n in NAMES}
        assert all(url.startswith("https://") for url in endpoints.values())


def test_a_scope_fan_out_and_a_hop_run_over_pinned_tls(fleet: ProcessFleet) -> None:
    with admin(fleet, "Berlin") as berlin:
        r = berlin.get("/image/v2/images", headers={"X-Scope": "{image: Berlin&Denver&Paris}"})
        assert r.status_code == 200, r.text
        assert set(r.headers["x-edgefed-site"].split(",")) == set(NAMES)
        r = berlin.get("/compute/v2.1/flavors", headers={"X-Scope": "{compute: Paris}"})
        assert r.status_code == 200, r.text
        assert r.headers["x-edgefed-site"] == "Paris"


def test_a_sync_push_arrives_over_tls(fleet: ProcessFleet) -> None:
    with admin(fleet, "Denver") as denver:
        r = denver.post("/edge/v1/sync/registrations", json={"registration": {"source": "Berlin"}})
        assert r.status_code == 201, r.text
        pending = r.json()["registration"].get("status") == "pending"
    with admin(fleet, "Berlin") as berlin:
        if pending:  # the source's operator accepts its receivers
            assert berlin.post("/edge/v1/sync/receivers/Denver/accept").status_code < 300
        r = berlin.post("/identity/v3/projects", json={"project": {"name": "over-tls"}})
        assert r.status_code == 201, r.text
        project = r.json()["project"]["id"]
        r = berlin.post(
            "/edge/v1/sync/marks", json={"mark": {"kind": "project", "id": project, "to": "Denver"}}
        )
        assert r.status_code in (200, 201), r.text

    def arrived() -> bool:
        with admin(fleet, "Denver") as denver:
            return denver.get(f"/identity/v3/projects/{project}").status_code == 200

    until(arrived, within=30, what="the pushed project at Denver")


def test_the_openstack_cli_works_with_the_fleets_clouds_yaml(
    fleet: ProcessFleet, tmp_path: Path
) -> None:
    clouds = fleet.clouds_yaml(tmp_path / "clouds.yaml")
    assert stat.S_IMODE(clouds.stat().st_mode) == 0o600
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = str(clouds)
    for argv in (
        ["--os-cloud", "berlin", "token", "issue", "-f", "value", "-c", "id"],
        ["--os-cloud", "paris", "--os-scope", "{compute: Denver}", "flavor", "list"],
    ):
        done = subprocess.run(
            [openstack_binary(), *argv],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip()


def test_plain_http_to_a_tls_site_gets_no_answer(fleet: ProcessFleet) -> None:
    plain = fleet["Denver"].url.replace("https://", "http://")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{plain}/", timeout=10)


def test_site_files_are_private(fleet: ProcessFleet) -> None:
    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    for name in NAMES:
        data = fleet[name].data_dir
        assert mode(data) == 0o700 and mode(data / "keys") == 0o700
        files = [data / "site.toml", data / "site.db", *(data / "keys").iterdir()]
        files += [p for p in (data / "site.db-wal", data / "site.db-shm") if p.exists()]
        assert data / "keys" / "signing-cert.pem" in files
        for path in files:
            assert mode(path) == 0o600, path


class Impostor:
    """A TLS server on a site's port with a certificate for another Ed25519 key: it
    answers anything with a 200 that would fool a caller that did not pin."""

    def __init__(self, port: int, directory: Path) -> None:
        key = Ed25519PrivateKey.generate()
        (directory / "impostor.pem").write_bytes(site_certificate_pem(key, name="Paris"))
        (directory / "impostor-key.pem").write_bytes(key.to_pem())
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(directory / "impostor.pem", directory / "impostor-key.pem")
        self.port = port
        self.handshakes = 0
        self.requests = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handshakes += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self.requests += 1
                body = b'{"flavors": [{"id": "forged", "name": "forged"}]}'
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            self.server = await asyncio.start_server(
                self._serve, "127.0.0.1", self.port, ssl=self.context, reuse_address=True
            )

        self.loop.run_until_complete(start())
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self) -> Impostor:
        self.thread.start()
        assert self.ready.wait(10), "the impostor did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self.server is not None
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def test_a_server_holding_another_key_at_a_pinned_origin_is_refused(
    fleet: ProcessFleet, tmp_path: Path
) -> None:
    """Paris's machine is replaced by one that does not hold Paris's key (an attacker
    on its address, or a rebuilt box): Berlin sends it nothing and says why."""
    paris = fleet["Paris"]
    paris.stop()
    answers: list[httpx.Response] = []
    try:
        with Impostor(paris.port, tmp_path) as impostor, admin(fleet, "Berlin") as berlin:

            def refused_for_the_pin() -> bool:
                r = berlin.get("/compute/v2.1/flavors", headers={"X-Scope": "{compute: Paris}"})
                answers.append(r)
                return "pin mismatch" in r.text

            until(refused_for_the_pin, within=30, what="Berlin refusing Paris's impostor")
            last = answers[-1]
            assert last.status_code == 503, last.text
            assert f"TLS pin mismatch for {paris.public_url}" in last.text
            assert "forged" not in "".join(a.text for a in answers)
            assert impostor.requests == 0, "a request reached the impostor"
            # The rest of the fleet keeps serving.
            r = berlin.get("/compute/v2.1/flavors", headers={"X-Scope": "{compute: Denver}"})
            assert r.status_code == 200, r.text
    finally:
        paris.start()

    def paris_back() -> bool:
        with admin(fleet, "Berlin") as berlin:
            r = berlin.get("/compute/v2.1/flavors", headers={"X-Scope": "{compute: Paris}"})
            return r.status_code == 200

    until(paris_back, within=60, what="Berlin reaching the real Paris again")
