"""Site settings: one frozen value, built once at the edge (CLI, config file).

Nothing else in edgefed reads the environment or a config file; the settings are
passed explicitly to whatever needs them.

A config file is TOML whose keys are the field names below, for example::

    name = "Berlin"
    port = 5001
    data_dir = "/var/lib/edgefed/berlin"
    admin_password = "secret"
    labels = { region = "eu", tier = "far-edge" }

    [location]
    lat = 52.52
    lon = 13.40
    country = "DE"
    region = "eu"

    [[compute_hosts]]
    name = "berlin-compute-1"
    vcpus = 16
    ram_mb = 65536
    disk_gb = 1000
"""

from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefed.core.errors import ValidationFailed

# \Z, not $: "$" also matches before a final newline, and "Berlin\n" is no site name.
SITE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,62}\Z")


@dataclass(frozen=True, slots=True)
class Location:
    lat: float = 0.0
    lon: float = 0.0
    country: str = ""
    region: str = ""


@dataclass(frozen=True, slots=True)
class MappingSpec:
    """A mapping rule from the config file (``[[mapping]]``, docs/fleet-trust.md): users
    of ``user_domain`` (or only ``user``) whose tokens ``site`` issued ("*": any fleet
    site) get ``role`` here on ``project`` (name in the default domain, or id), on
    ``domain``, or on the system."""

    site: str
    role: str
    user_domain: str = "Default"
    user: str = "*"
    project: str | None = None
    domain: str | None = None
    system: bool = False


def fleet_admin_mappings(user: str = "admin", project: str = "admin") -> tuple[MappingSpec, ...]:
    """Rules that make the admin of every fleet site an admin here too: what ``edgefed up``
    and the test fleets use, so one operator drives the whole fleet. A real fleet maps
    only what it needs (a compromised site holds whatever its users are mapped to)."""
    return (
        MappingSpec(site="*", user=user, role="admin", project=project),
        MappingSpec(site="*", user=user, role="admin", system=True),
    )


def mapping_toml(specs: tuple[MappingSpec, ...]) -> str:
    """A ``mapping = [...]`` line for a site's config file (inline tables: one top-level
    key, so other keys may follow it)."""
    tables = []
    for spec in specs:
        pairs = [
            f"{name} = {'true' if value is True else _toml_str(value)}"
            for name, value in dataclasses.asdict(spec).items()
            if value is not None and not (name == "system" and not value)
        ]
        tables.append("{ " + ", ".join(pairs) + " }")
    return f"mapping = [{', '.join(tables)}]\n"


def _toml_str(value: object) -> str:
    """A TOML basic string (JSON's escaping is valid TOML)."""
    return json.dumps(str(value))


@dataclass(frozen=True, slots=True)
class HostSpec:
    """A compute host of the fake driver (until the hosts inventory replaces it)."""

    name: str
    vcpus: int = 32
    ram_mb: int = 131072
    disk_gb: int = 2000


@dataclass(frozen=True, slots=True)
class SiteSettings:
    name: str
    data_dir: Path
    admin_password: str
    host: str = "127.0.0.1"
    port: int = 0
    public_url: str | None = None
    # This site's internal/admin catalog endpoints (default: the public URL).
    internal_url: str | None = None
    # The address other sites' hosts reach this site's volume exports (NBD) on (default:
    # the public URL's host name); the exports listen on ``host``, each on a free port, or
    # on a port of ``volume_export_ports`` ("20100-20115", one export a port) when set, so
    # that a firewall rule, or the WAN emulator of a benchmark, can stand in front of them.
    volume_export_host: str | None = None
    volume_export_ports: str | None = None
    # Seconds between two attempts to release another site's volume attachment that
    # site could not be reached for (a detach during a cut completes after the heal).
    remote_release_retry_seconds: float = 10.0
    # Relocations to other sites (docs/relocation.md): the disk goes in chunks of this
    # many bytes, at most relocation_bytes_per_second (0: as fast as the link goes); a
    # link that stays down relocation_link_timeout_seconds fails a move that can still
    # be undone (the guest starts again here), and one the destination may already run
    # waits and is taken up again every relocation_retry_seconds; the destination's
    # guest must be ACTIVE within relocation_start_timeout_seconds of the commit.
    relocation_chunk_bytes: int = 4 << 20
    relocation_bytes_per_second: int = 0
    relocation_link_timeout_seconds: float = 600.0
    relocation_retry_seconds: float = 30.0
    relocation_start_timeout_seconds: float = 900.0
    # At a destination: a move whose source sent nothing for this long before its
    # commit is aborted there (its partial files go; the source, back, undoes it).
    relocation_offer_ttl_seconds: float = 3600.0
    # At most this many of this site's moves run at once (a drain starts them all).
    relocation_concurrency: int = 2
    # Volumes are sparse: their sizes may add up to this times the pool's storage
    # (Cinder's max_over_subscription_ratio, 20 by default).
    volume_over_subscription_ratio: float = 20.0
    database_url: str | None = None
    admin_user: str = "admin"
    admin_project: str = "admin"
    token_ttl_seconds: int = 3600
    # Failed logins (Keystone's [security_compliance] lockout options): that many failed
    # password logins in a row lock the user for lockout_duration seconds (0: no lockout,
    # Keystone's default). At most password_check_concurrency password hashes are checked
    # at once, password_check_queue more wait, the rest get 429 (docs/identity.md).
    lockout_failure_attempts: int = 0
    lockout_duration: float = 1800.0
    password_check_concurrency: int = 2
    password_check_queue: int = 64
    location: Location = field(default_factory=Location)
    labels: Mapping[str, str] = field(default_factory=dict)
    # "fake" (simulated, in this process) or "qemu" (real guests through host agents).
    compute_driver: str = "fake"
    compute_hosts: tuple[HostSpec, ...] = ()
    # The qemu driver: seconds an agent has to answer a spawn, and any other operation
    # (more than the guest's ACPI shutdown timeout); an agent's poll waits at most
    # agent_poll_wait_seconds for a command: less than uvicorn's 5 s graceful shutdown,
    # which would otherwise wait for the polls in flight (a command wakes a poll at once).
    agent_spawn_timeout_seconds: float = 300.0
    agent_command_timeout_seconds: float = 120.0
    agent_poll_wait_seconds: float = 4.0
    # As Nova's resume_guests_state_on_host_boot: an agent that finds, after its host
    # booted, the guests of ACTIVE servers powered off, starts them again.
    resume_guests_on_host_boot: bool = True
    # All-in-one: with the qemu driver, `edgefed site serve` also runs a host agent for
    # this machine (as host local_agent_hostname, default "<site>-local"): its state in
    # <data_dir>/agent, its network state (dnsmasq runs as nobody: a directory others
    # may traverse) in agent_hostnet_dir; QEMU's accelerator "auto", "kvm" or "tcg".
    local_agent: bool = True
    local_agent_hostname: str | None = None
    agent_hostnet_dir: str = "/run/edgefed/hostnet"
    agent_accel: str = "auto"
    # How long the fake driver keeps a server in BUILD (and in other transitions).
    fake_transition_seconds: float = 0.2
    # The scheduler's overcommit: capacity = physical * ratio (Nova's initial_*_allocation_ratio).
    cpu_allocation_ratio: float = 4.0
    ram_allocation_ratio: float = 1.0
    disk_allocation_ratio: float = 1.0
    # The availability zone of this site's compute hosts.
    availability_zone: str = "nova"
    # SQLite's synchronous pragma: FULL survives power loss, NORMAL only a crash.
    sqlite_synchronous: str = "FULL"
    max_request_body_bytes: int = 1 << 20
    max_image_bytes: int = 1 << 40
    log_level: str = "info"
    # Fleet: a one-time enrollment token to join at start, and the gossip cadence.
    join_token: str | None = None
    gossip_interval_seconds: float = 2.0
    # Tokens of other sites are refused when this site has not caught up with the
    # fleet's revocations for this long (a site that was cut off); 0 = never refused.
    revocation_staleness_seconds: float = 60.0
    # How long the scope router waits for one site's answer.
    scope_call_timeout_seconds: float = 30.0
    # A peer that has not answered for this long is considered unreachable.
    peer_timeout_seconds: float = 6.0
    # Fleet operations: the sites (a scope expression, e.g. "@region=eu") this site
    # aggregates health, alarms and telemetry of; how often health is evaluated; when
    # capacity use raises an alarm; an RTT above which a peer counts as degraded.
    fleet_aggregate: str | None = None
    health_interval_seconds: float = 1.0
    # In a fleet of more sites than this, a site probes only the sites it aggregates
    # (full-mesh probing is N² requests); at most this many, it watches every peer.
    watch_all_peers_max_sites: int = 16
    capacity_alarm_percent: float = 90.0
    degraded_rtt_ms: float = 500.0
    # Raise sync_failing for a peer whose deliveries keep failing this long (an open
    # circuit breaker raises it at once).
    sync_failing_alarm_seconds: float = 60.0
    # Hosts inventory: the management network (dynamic: addresses come from its pool,
    # "start-end"; static: each host is given one inside the subnet), and how long a
    # host agent may stay silent before its host is marked down.
    management_subnet: str = "192.168.204.0/24"
    management_dynamic: bool = True
    management_pool: str | None = None
    host_heartbeat_timeout_seconds: float = 30.0
    # Sync: retry delays (the last one repeats; jittered), the per-peer circuit breaker
    # (opens after this many consecutive failed pushes, probes after the cool-down),
    # pushes in flight per peer, resources per push, and an optional marks file
    # (TOML: [[mark]] kind, id, to).
    sync_backoff_seconds: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0)
    sync_breaker_threshold: int = 3
    sync_breaker_cooldown_seconds: float = 5.0
    sync_peer_concurrency: int = 2
    sync_batch_size: int = 500
    sync_marks_file: str | None = None
    # Receivers whose registration requests this site accepts without waiting for its
    # operator (``edgefed sync accept``): site names, '@key=value' selectors or '*'.
    sync_accept: tuple[str, ...] = ()
    # TLS (docs/tls.md): serve HTTPS on the one port. Other sites get the certificate of
    # the site key (they pin that key); clients get the operator's certificate and key
    # (PEM files), or the site-key certificate when none is given.
    tls: bool = False
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    # Mapping rules for users of other fleet sites (``[[mapping]]`` tables).
    mapping: tuple[MappingSpec, ...] = ()

    def __post_init__(self) -> None:
        for name in ("lockout_failure_attempts", "password_check_queue"):
            if getattr(self, name) < 0:
                raise ValidationFailed(f"{name} must be 0 or more", field=name)
        if self.password_check_concurrency < 1:
            raise ValidationFailed(
                "password_check_concurrency must be 1 or more", field="password_check_concurrency"
            )
        if not self.lockout_duration > 0:
            raise ValidationFailed("lockout_duration must be above 0", field="lockout_duration")
        if self.compute_driver not in ("fake", "qemu"):
            raise ValidationFailed(
                f"unknown compute driver {self.compute_driver!r} (known: fake, qemu)",
                field="compute_driver",
            )
        if self.tls and self.runs_local_agent:
            raise ValidationFailed(
                "the local host agent does not speak TLS yet: set local_agent = false and "
                "run `edgefed host agent --guests` yourself, or serve without tls",
                field="local_agent",
            )
        if self.agent_accel not in ("auto", "kvm", "tcg"):
            raise ValidationFailed("agent_accel must be auto, kvm or tcg", field="agent_accel")
        if not SITE_NAME_RE.match(self.name):
            raise ValidationFailed(
                f"site name {self.name!r} must start with a letter and use only letters, "
                "digits, '.', '_' and '-' (at most 63 characters)",
                field="name",
            )
        if not 0 <= self.port <= 65535:
            raise ValidationFailed(f"port {self.port} is out of range 0-65535", field="port")
        if self.volume_export_ports is not None:
            parse_port_range(self.volume_export_ports, field="volume_export_ports")
        if self.sqlite_synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValidationFailed(
                "sqlite_synchronous must be FULL, NORMAL or EXTRA", field="sqlite_synchronous"
            )
        if (self.tls_cert_file or self.tls_key_file) and not self.tls:
            field_name = "tls_cert_file" if self.tls_cert_file else "tls_key_file"
            raise ValidationFailed(f"{field_name} needs tls = true", field=field_name)
        if self.tls_key_file and not self.tls_cert_file:
            raise ValidationFailed("tls_key_file needs tls_cert_file", field="tls_key_file")
        if self.tls and self.public_url and not self.public_url.startswith("https://"):
            raise ValidationFailed(
                f"public_url {self.public_url!r} must be https:// on a TLS site (other sites "
                "would call it in plain HTTP)",
                field="public_url",
            )

    @property
    def volume_export_port_range(self) -> range | None:
        """The ports volume exports may listen on; None: any free port."""
        if self.volume_export_ports is None:
            return None
        return parse_port_range(self.volume_export_ports, field="volume_export_ports")

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'site.db'}"

    @property
    def hosts(self) -> tuple[HostSpec, ...]:
        if self.compute_hosts:
            return self.compute_hosts
        return (HostSpec(name=f"{self.name.lower()}-compute-1"),)

    @property
    def local_agent_host(self) -> str:
        """The hostname of the all-in-one agent (an RFC 1123 label)."""
        if self.local_agent_hostname:
            return self.local_agent_hostname
        slug = re.sub(r"[^a-z0-9-]+", "-", self.name.lower()).strip("-")
        return f"{slug[:50]}-local"

    @property
    def runs_local_agent(self) -> bool:
        return self.compute_driver == "qemu" and self.local_agent

    def with_port(self, port: int) -> SiteSettings:
        """The same settings once the listening port is known (for ``port = 0``)."""
        scheme = "https" if self.tls else "http"
        public = self.public_url or f"{scheme}://{self.host}:{port}"
        return dataclasses.replace(self, port=port, public_url=public)


_PORT_RANGE_RE = re.compile(r"\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?\Z")


def parse_port_range(value: object, *, field: str) -> range:
    """``"20100-20115"`` (both ends included) or one port ``"20100"``, within 1-65535."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    match = _PORT_RANGE_RE.match(text) if isinstance(text, str) else None
    if match is not None:
        first = int(match.group(1))
        last = int(match.group(2) or first)
        if 1 <= first <= last <= 65535:
            return range(first, last + 1)
    raise ValidationFailed(
        f'{field} must be a port range "first-last" (or one port) within 1-65535, first '
        f'not above last, like "20100-20115"; not {value!r}',
        field=field,
    )


def _coerce(raw: Mapping[str, Any]) -> dict[str, Any]:
    values = dict(raw)
    if "data_dir" in values:
        values["data_dir"] = Path(values["data_dir"]).expanduser()
    if isinstance(values.get("location"), Mapping):
        values["location"] = Location(**values["location"])
    if "compute_hosts" in values:
        values["compute_hosts"] = tuple(HostSpec(**h) for h in values["compute_hosts"])
    if "labels" in values:
        values["labels"] = {str(k): str(v) for k, v in values["labels"].items()}
    if "mapping" in values:
        values["mapping"] = tuple(
            m if isinstance(m, MappingSpec) else MappingSpec(**m) for m in values["mapping"]
        )
    return values


def load_settings(
    config_file: Path | None = None, overrides: Mapping[str, Any] | None = None
) -> SiteSettings:
    """Build the settings from a TOML file, then command-line overrides (None = unset)."""
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            values.update(tomllib.loads(config_file.read_text()))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValidationFailed(f"cannot read config file {config_file}: {exc}") from exc
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    known = {f.name for f in dataclasses.fields(SiteSettings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValidationFailed(f"unknown setting(s): {', '.join(unknown)}", field=unknown[0])
    for required in ("name", "data_dir", "admin_password"):
        if required not in values:
            raise ValidationFailed(f"setting {required!r} is required", field=required)
    try:
        return SiteSettings(**_coerce(values))
    except TypeError as exc:
        raise ValidationFailed(f"bad setting: {exc}") from exc
