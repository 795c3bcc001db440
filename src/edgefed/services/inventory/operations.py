"""What the inventory does: host add/change, lock/unlock, labels, upgrade, and the agent
side (enrollment with a one-time token, heartbeats, marking silent hosts down).

The routes (``hosts``, ``routes``) find the host and call these; every rule is in
``rules`` or ``addressing``, so the same checks apply whether a request comes from the
CLI or from an agent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import Callable
from typing import Any

from edgefed.api.context import SiteContext
from edgefed.core.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from edgefed.services.inventory import rules
from edgefed.services.inventory.addressing import ManagementNetwork
from edgefed.services.inventory.views import (
    EnrollRequest,
    Hardware,
    HostCreate,
    HostUpdate,
    LabelsUpdate,
    TokenCreate,
)
from edgefed.store.inventory import (
    EnrollmentTokenRecord,
    EnrollmentTokens,
    HostRecord,
    Hosts,
    MgmtIpTaken,
    NewEnrollmentToken,
    NewHost,
)

log = logging.getLogger("edgefed.inventory")
ALLOCATION_ATTEMPTS = 8

CREDENTIAL_HEADER = "x-host-credential"
ENROLLMENT_TOKEN_PREFIX = "edgefed-het-"  # noqa: S105 - a prefix, not a secret


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def hosts_of(ctx: SiteContext) -> Hosts:
    """The site's hosts, stamped by the site's clock."""
    return Hosts(ctx.store, now=lambda: dt.datetime.fromtimestamp(ctx.clock(), dt.UTC))


class HostInventory:
    def __init__(self, ctx: SiteContext):
        self.ctx = ctx
        self.hosts = hosts_of(ctx)
        self.tokens = EnrollmentTokens(ctx.store, now=self.hosts.now)
        self.network = ManagementNetwork.from_settings(ctx.settings)

    # Operator side -----------------------------------------------------------------

    async def add(self, body: HostCreate) -> HostRecord:
        hostname = rules.check_hostname(body.hostname)
        personality = rules.check_personality(body.personality)
        rules.check_hostname_for_personality(hostname, personality)
        bmc_given = any(v is not None for v in (body.bm_type, body.bm_ip, body.bm_username))
        rules.check_bmc_allowed(personality, bmc_given=bmc_given)
        rules.check_bm_type(body.bm_type)
        for key, value in body.labels.items():
            rules.check_label(key, value)
        for name in ("cpu_allocation_ratio", "ram_allocation_ratio", "disk_allocation_ratio"):
            rules.check_allocation_ratio(name, getattr(body, name))
        if await self.hosts.get(id=hostname) is not None:
            raise Conflict(f"A host named {hostname} already exists.")
        host_id = str(uuid.uuid4())
        host = await self._insert(
            body.mgmt_ip,
            lambda mgmt_ip: NewHost(
                id=host_id,
                hostname=hostname,
                personality=personality,
                mgmt_ip=mgmt_ip,
                bm_type=body.bm_type,
                bm_ip=body.bm_ip,
                bm_username=body.bm_username,
                labels=body.labels,
                cpu_allocation_ratio=body.cpu_allocation_ratio,
                ram_allocation_ratio=body.ram_allocation_ratio,
                disk_allocation_ratio=body.disk_allocation_ratio,
            ),
        )
        log.info("host %s added as %s with mgmt ip %s", hostname, personality, host.mgmt_ip)
        return host

    async def changes(self, host: HostRecord, body: HostUpdate) -> dict[str, Any]:
        """What an update of ``host`` sets, every rule checked."""
        given = body.model_fields_set
        changes: dict[str, Any] = {}
        hostname = host.hostname
        personality = host.personality
        if body.personality is not None:
            personality = rules.check_personality(body.personality)
            rules.check_personality_change(
                current=host.personality, new=personality, locked=host.locked
            )
            changes["personality"] = personality
        if body.hostname is not None:
            hostname = rules.check_hostname(body.hostname)
            if hostname != host.hostname:
                if not host.locked:
                    raise Conflict("hostname can only be changed while the host is locked")
                other = await self.hosts.get(id=hostname)
                if other is not None and other.id != host.id:
                    raise Conflict(f"A host named {hostname} already exists.")
                changes["hostname"] = hostname
        rules.check_hostname_for_personality(hostname, personality)
        bmc = {
            name: getattr(body, name) if name in given else getattr(host, name)
            for name in ("bm_type", "bm_ip", "bm_username")
        }
        bmc_touched = any(getattr(body, n) is not None for n in bmc)
        rules.check_bmc_allowed(personality, bmc_given=bmc_touched)
        if personality == "edgeworker" and any(v for v in bmc.values()):
            raise ValidationFailed(
                "BMC settings are not supported on edgeworker hosts: clear bm_type, bm_ip "
                "and bm_username before making this host an edgeworker",
                field="bm_type",
            )
        rules.check_bm_type(bmc["bm_type"])
        changes.update({k: v for k, v in bmc.items() if k in given})
        if "mgmt_ip" in given and body.mgmt_ip != host.mgmt_ip:
            if self.network.dynamic:
                raise ValidationFailed(
                    "mgmt_ip cannot be set: the management network is dynamic, so the site "
                    "allocates addresses from its pool",
                    field="mgmt_ip",
                )
            if not host.locked:
                raise Conflict("mgmt_ip can only be changed while the host is locked")
            used = await self.hosts.used_mgmt_ips() - {host.mgmt_ip or ""}
            if not body.mgmt_ip:
                raise ValidationFailed(
                    "mgmt_ip is required: the management network is static", field="mgmt_ip"
                )
            changes["mgmt_ip"] = self.network.check_static(body.mgmt_ip, used=used)
        for name in ("cpu_allocation_ratio", "ram_allocation_ratio", "disk_allocation_ratio"):
            value = getattr(body, name)
            if value is not None:
                rules.check_allocation_ratio(name, value)
                changes[name] = value
        return changes

    async def _set(self, host: HostRecord, **changes: Any) -> HostRecord:
        updated = await self.hosts.update(id=host.id, changes=changes)
        if updated is None:
            raise NotFound(f"Host {host.hostname} could not be found.")
        return updated

    @staticmethod
    def check_deletable(host: HostRecord) -> None:
        if not host.locked:
            raise Conflict(f"Host {host.hostname} is unlocked; lock it before deleting it.")

    async def lock(self, host: HostRecord) -> HostRecord:
        if host.locked:
            raise Conflict(f"Host {host.hostname} is already locked.")
        return await self._set(host, administrative="locked")

    async def unlock(self, host: HostRecord) -> HostRecord:
        if not host.locked:
            raise Conflict(f"Host {host.hostname} is already unlocked.")
        if host.personality is None:
            raise Conflict(f"Host {host.hostname} has no personality yet; set one first.")
        return await self._set(host, administrative="unlocked")

    async def upgrade(self, host: HostRecord, *, load: str) -> HostRecord:
        rules.check_upgrade_allowed(host.personality)
        if not host.locked:
            raise Conflict(f"Host {host.hostname} must be locked before it is upgraded.")
        return await self._set(host, target_load=load)

    async def set_labels(self, host: HostRecord, body: LabelsUpdate) -> HostRecord:
        labels = dict(host.labels)
        for key in body.remove:
            if key not in labels:
                raise NotFound(f"Host {host.hostname} has no label {key!r}.")
            labels.pop(key)
        for key, value in body.labels.items():
            rules.check_label(key, value)
            labels[key] = value
        return await self._set(host, labels=labels)

    # Enrollment tokens ---------------------------------------------------------------

    async def create_token(self, body: TokenCreate) -> tuple[EnrollmentTokenRecord, str]:
        hostname = rules.check_hostname(body.hostname) if body.hostname else None
        personality = rules.check_personality(body.personality) if body.personality else None
        if hostname is not None:
            rules.check_hostname_for_personality(hostname, personality)
        secret = ENROLLMENT_TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = await self.tokens.create(
            new=NewEnrollmentToken(
                id=str(uuid.uuid4()),
                token_hash=_sha256(secret),
                hostname=hostname,
                personality=personality,
                expires_at=self.ctx.clock() + body.ttl_seconds,
            )
        )
        return record, secret

    async def revoke_token(self, token_id: str) -> None:
        if not await self.tokens.delete(id=token_id):
            raise NotFound(f"Enrollment token {token_id} could not be found.")

    # Agent side ----------------------------------------------------------------------

    async def enroll(self, body: EnrollRequest) -> tuple[HostRecord, str]:
        """Exchange a one-time enrollment token for a per-host credential.

        A token takes over no host: one made for any host enrolls a new hostname only; one
        made for a hostname enrolls that host while it has no agent yet (an operator added
        it, or reset its agent with ``DELETE /hosts/{host}/agent``). A host whose agent is
        enrolled keeps its identity and credential whatever token is presented.
        """
        token = await self.tokens.by_hash(_sha256(body.enrollment_token))
        now = self.ctx.clock()
        if token is None:
            raise Unauthorized("The host enrollment token is not valid.")
        if token.used_at is not None:
            raise Unauthorized("The host enrollment token has already been used (one-time).")
        if token.expires_at <= now:
            raise Unauthorized("The host enrollment token has expired.")
        hostname = rules.check_hostname(body.hostname)
        if token.hostname is not None and token.hostname != hostname:
            raise Forbidden(f"This enrollment token is for host {token.hostname}, not {hostname}.")
        secret = secrets.token_urlsafe(32)
        host = await self.hosts.by_hostname(hostname)
        if host is None:
            rules.check_hostname_for_personality(hostname, token.personality)
            self.network.assign(body.mgmt_ip, used=await self.hosts.used_mgmt_ips())  # 4xx first
            host_id = str(uuid.uuid4())
            if not await self.tokens.consume(token.id, host_id=host_id, used_at=now):
                raise Unauthorized("The host enrollment token has already been used (one-time).")
            personality = token.personality
            host = await self._insert(
                body.mgmt_ip,
                lambda mgmt_ip: NewHost(
                    id=host_id,
                    hostname=hostname,
                    personality=personality,
                    mgmt_ip=mgmt_ip,
                    availability="available",
                    hardware=body.hardware.model_dump(),
                    credential_hash=_sha256(secret),
                    last_heartbeat_at=now,
                ),
            )
        else:
            if token.hostname is None:
                raise Conflict(
                    f"Host {hostname} already exists: a token made for any host enrolls new "
                    f"hosts only (create one for {hostname} to enroll its agent)."
                )
            if host.credential_hash is not None:
                raise Conflict(
                    f"Host {hostname} already has an enrolled agent; an operator must reset "
                    f"it first (DELETE /edge/v1/hosts/{hostname}/agent)."
                )
            if token.personality is not None and host.personality not in (None, token.personality):
                raise Conflict(
                    f"Host {hostname} is a {host.personality}, but the enrollment token is "
                    f"for a {token.personality}."
                )
            changes: dict[str, Any] = {
                "availability": "available",
                "hardware": body.hardware.model_dump(),
                "last_heartbeat_at": now,
            }
            if host.personality is None and token.personality is not None:
                changes["personality"] = token.personality
            claimed = await self.hosts.claim_agent(
                token_id=token.id,
                host_id=host.id,
                credential_hash=_sha256(secret),
                used_at=now,
                changes=changes,
            )
            if claimed is None:  # the token or the host went to a concurrent enrollment
                raise Conflict(f"Host {hostname} was enrolled meanwhile, or the token used.")
            host = claimed
        log.info("host %s enrolled its agent", hostname)
        return host, f"{host.id}.{secret}"

    async def reset_agent(self, host: HostRecord) -> HostRecord:
        """Forget the host's agent credential (a reinstalled or stolen machine): the next
        enrollment, with a token made for this hostname, gives it a new one."""
        return await self._set(host, credential_hash=None, availability="unknown")

    async def _insert(
        self, requested_ip: str | None, new_host: Callable[[str | None], NewHost]
    ) -> HostRecord:
        """Add a host with ``requested_ip`` or, on a dynamic management network, the first
        free address; two hosts added at the same moment can pick the same one, and the
        database refuses the second: it then takes the next free one (bounded)."""
        for attempt in range(ALLOCATION_ATTEMPTS):
            mgmt_ip = self.network.assign(requested_ip, used=await self.hosts.used_mgmt_ips())
            try:
                return await self.hosts.create(new=new_host(mgmt_ip))
            except MgmtIpTaken:
                if requested_ip is not None or attempt == ALLOCATION_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def authenticate_agent(self, credential: str | None) -> HostRecord:
        if not credential:
            raise Unauthorized("A host credential (X-Host-Credential) is required.")
        host_id, _, secret = credential.partition(".")
        host = await self.hosts.get(id=host_id) if secret else None
        if (
            host is None
            or host.credential_hash is None
            or not hmac.compare_digest(host.credential_hash, _sha256(secret))
        ):
            raise Unauthorized("The host credential is not valid; enroll the agent again.")
        return host

    async def heartbeat(self, host: HostRecord, *, hardware: Hardware | None) -> HostRecord:
        changes: dict[str, Any] = {
            "availability": "available",
            "last_heartbeat_at": self.ctx.clock(),
        }
        if hardware is not None:
            changes["hardware"] = hardware.model_dump()
        if host.availability == "down":
            log.warning("host %s is heartbeating again", host.hostname)
        return await self._set(host, **changes)

    async def mark_silent_hosts_down(self) -> list[HostRecord]:
        timeout = self.ctx.settings.host_heartbeat_timeout_seconds
        down = await self.hosts.mark_silent_down(heard_before=self.ctx.clock() - timeout)
        for host in down:
            # The fleet alarms service will raise "host down" from here once it exists.
            log.warning(
                "host %s is down: no heartbeat for more than %.1f s", host.hostname, timeout
            )
        return down
