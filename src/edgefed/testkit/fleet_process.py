"""A fleet of real site processes on loopback, each behind its own WAN link.

Every site's public URL (what the registry and the catalog advertise, what the other
sites call) is its ``WanLink``, so inter-site traffic crosses the emulated WAN and a
site can be cut off from the rest (``wan.cut_site(name)``). Tests talk to a site
directly on ``site.url`` (its real port) — the operator next to the site.
The first site enrolls the others with one-time tokens; ``start()`` returns when every
site's registry lists every site.

``tls=True``: every site serves HTTPS, its link's URL is ``https://`` (TLS passes
through the emulated WAN; other sites pin that origin to the site's key), and clients
see a certificate from a local CA made in ``root/tls`` (``clouds_yaml()`` trusts it).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from edgefed.core.files import write_private
from edgefed.core.localca import ensure_local_ca, issue_server_certificate
from edgefed.core.settings import fleet_admin_mappings, mapping_toml
from edgefed.testkit.auth import password_auth
from edgefed.testkit.process import DEFAULT_PASSWORD, SiteProcess, free_port
from edgefed.wan import LinkProfile, Wan

CONVERGE_DEADLINE = 60.0


def password_token(
    url: str,
    password: str = DEFAULT_PASSWORD,
    *,
    project: str = "admin",
    user: str = "admin",
    verify: ssl.SSLContext | bool = True,
) -> str:
    r = httpx.post(
        f"{url}/identity/v3/auth/tokens",
        json=password_auth(user, password, project),
        timeout=30,
        verify=verify,
    )
    r.raise_for_status()
    return r.headers["x-subject-token"]


@dataclass
class ProcessFleet:
    root: Path
    names: list[str]
    rtt_ms: float = 0.0
    labels: dict[str, dict[str, str]] = field(default_factory=dict)
    database_urls: dict[str, str | None] = field(default_factory=dict)
    gossip_interval: float = 1.0
    # How many sites start at once, and how long one may take (large fleets, busy hosts).
    start_parallelism: int = 8
    start_timeout: float = 60.0
    converge_deadline: float = CONVERGE_DEADLINE
    # "all": start() returns when every site lists every site; "first": when the first
    # site (where the others enrolled) lists them all and each lists the first, which is
    # what a star-shaped workload needs, without waiting for slow gossip to spread.
    converge: Literal["all", "first"] = "all"
    # Where each site's port comes from (a long start of many sites may want ports
    # outside the kernel's ephemeral range, which other processes keep taking).
    pick_port: Callable[[], int] = free_port
    extra_config: str = ""
    # Lines for one site's config only (a site with the qemu driver among fake ones).
    site_config: dict[str, str] = field(default_factory=dict)
    # Every site's admin is an admin at every site (mapping rules, as ``edgefed up``).
    trust_admins: bool = True
    tls: bool = False
    wan: Wan = field(default_factory=Wan)
    sites: dict[str, SiteProcess] = field(default_factory=dict)

    def start(self) -> ProcessFleet:
        self.wan.start()
        scheme = "https" if self.tls else "http"
        try:
            ca = ensure_local_ca(self.root / "tls") if self.tls else None
            for name in self.names:
                port = self.pick_port()
                link = self.wan.add_link(
                    server=name, target=("127.0.0.1", port), profile=LinkProfile(rtt_ms=self.rtt_ms)
                )
                labels = self.labels.get(name, {})
                label_line = ", ".join(f'{k} = "{v}"' for k, v in labels.items())
                site = self.sites[name] = SiteProcess(
                    name=name,
                    data_dir=self.root / name.lower(),
                    port=port,
                    database_url=self.database_urls.get(name),
                    tls=self.tls,
                    extra_config=(
                        f'public_url = "{scheme}://127.0.0.1:{link.port}"\n'
                        f'internal_url = "{scheme}://127.0.0.1:{port}"\n'
                        f"gossip_interval_seconds = {self.gossip_interval}\n"
                        f"labels = {{ {label_line} }}\n{self.extra_config}"
                        + self.site_config.get(name, "")
                        + (mapping_toml(fleet_admin_mappings()) if self.trust_admins else "")
                    ),
                )
                if ca is not None:
                    site.ca_file = ca.cert_file
                    site.tls_cert_file = self.root / "tls" / f"{name.lower()}.pem"
                    site.tls_key_file = self.root / "tls" / f"{name.lower()}-key.pem"
                    issue_server_certificate(
                        ca,
                        hosts=["127.0.0.1", "localhost"],
                        cert_file=site.tls_cert_file,
                        key_file=site.tls_key_file,
                        name=f"edgefed site {name}",
                    )
            first = self.sites[self.names[0]].start()
            tokens = self._enrollment_tokens(first, self.names[1:])
            rest = [self.sites[n] for n in self.names[1:]]
            for site, token in zip(rest, tokens, strict=True):
                site.extra_config += f'join_token = "{token}"\n'
            with ThreadPoolExecutor(max_workers=self.start_parallelism) as pool:
                list(pool.map(lambda s: s.start(timeout=self.start_timeout), rest))
            self.wait_converged(self.converge_deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _enrollment_tokens(self, site: SiteProcess, names: list[str]) -> list[str]:
        headers = {"X-Auth-Token": self.token(site.name)}
        out = []
        for name in names:
            r = httpx.post(
                f"{site.url}/edge/v1/fleet/enrollments",
                headers=headers,
                json={"enrollment": {"name": name}},
                timeout=30,
                verify=site.verify,
            )
            r.raise_for_status()
            out.append(r.json()["enrollment"]["token"])
        return out

    def token(self, name: str, **kwargs: Any) -> str:
        """An admin token (or ``user=``, ``password=``, ``project=``) from site ``name``."""
        site = self.sites[name]
        kwargs.setdefault("password", site.password)
        return password_token(site.url, verify=site.verify, **kwargs)

    def client(self, name: str, **kwargs: Any) -> httpx.Client:
        """A client for site ``name`` (its real port, TLS verified when it serves TLS)."""
        site = self.sites[name]
        kwargs.setdefault("timeout", 30)
        return httpx.Client(base_url=site.url, verify=site.verify, **kwargs)

    def clouds_yaml(self, path: Path) -> Path:
        """A clouds.yaml (0600) with one cloud per site, named in lower case, trusting the
        fleet's CA when it serves TLS."""
        import yaml

        clouds = {n.lower(): s.clouds_entry() for n, s in self.sites.items()}
        write_private(path, yaml.safe_dump({"clouds": clouds}, sort_keys=False))
        return path

    def registry_of(self, name: str) -> list[dict[str, Any]]:
        site = self.sites[name]
        headers = {"X-Auth-Token": self.token(name)}
        r = httpx.get(
            f"{site.url}/edge/v1/fleet/sites", headers=headers, timeout=30, verify=site.verify
        )
        r.raise_for_status()
        sites: list[dict[str, Any]] = r.json()["sites"]
        return sites

    def wait_converged(self, deadline: float = CONVERGE_DEADLINE) -> None:
        """Until every site's registry lists every site as active (bounded); with
        ``converge="first"``, the first site every site and every site the first."""
        everyone = set(self.names)
        first = self.names[0]

        def wanted(name: str) -> set[str]:
            if self.converge == "all" or name == first:
                return everyone
            return {first, name}

        end = time.monotonic() + deadline
        pending = set(self.names)
        while pending and time.monotonic() < end:
            for name in sorted(pending):
                seen = {s["name"] for s in self.registry_of(name) if s["status"] == "active"}
                if wanted(name) <= seen:
                    pending.discard(name)
            if pending:
                time.sleep(0.2)  # bounded poll of real processes' gossip
        if pending:
            raise TimeoutError(f"fleet registries did not converge: {sorted(pending)} lag")

    def __getitem__(self, name: str) -> SiteProcess:
        return self.sites[name]

    def stop(self) -> None:
        for site in self.sites.values():
            site.stop()
        self.wan.stop()
