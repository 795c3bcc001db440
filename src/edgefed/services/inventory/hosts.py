"""Hosts under ``/edge/v1/hosts``, declared: admins only, found by id or hostname; lock,
unlock, upgrade, labels and an agent reset as actions on one host."""

from __future__ import annotations

from typing import Any

from edgefed.api.resource import EDGE, AdminOnly, Call, Filter, Resource, action
from edgefed.services.inventory import rules
from edgefed.services.inventory.operations import HostInventory, hosts_of
from edgefed.services.inventory.views import (
    HostCreate,
    HostUpdate,
    LabelsUpdate,
    UpgradeRequest,
    capacity,
    epoch_iso,
    iso,
)
from edgefed.store.inventory import HostRecord, Hosts


def _personality(values: list[str]) -> str:
    return rules.check_personality(values[-1])


class Host(Resource[HostRecord, Hosts]):
    key = "host"
    collection_key = "hosts"
    path = ""
    id_param = "host"
    attributes = (
        "id",
        "hostname",
        "personality",
        "mgmt_ip",
        "administrative",
        "availability",
        "bm_type",
        "bm_ip",
        "bm_username",
        "target_load",
        "labels",
        "hardware",
        "cpu_allocation_ratio",
        "ram_allocation_ratio",
        "disk_allocation_ratio",
    )
    dialect = EDGE
    access = AdminOnly[HostRecord]("hosts inventory")
    filters = {
        "personality": Filter(
            field="personality", parse=_personality, description="Only hosts of this personality."
        )
    }
    create_body = HostCreate
    update_body = HostUpdate

    def repository(self, call: Call) -> Hosts:
        return hosts_of(call.ctx)

    def view(self, host: HostRecord, call: Call) -> dict[str, Any]:
        return host_view(host)

    async def create(self, call: Call, repo: Hosts) -> HostRecord:
        return await HostInventory(call.ctx).add(call.model(HostCreate))

    async def changes(self, call: Call, repo: Hosts, host: HostRecord) -> dict[str, Any]:
        return await HostInventory(call.ctx).changes(host, call.model(HostUpdate))

    async def before_delete(self, call: Call, repo: Hosts, host: HostRecord) -> None:
        HostInventory.check_deletable(host)

    @action("DELETE", "/agent", name="reset_agent")
    async def reset_agent(self, call: Call, repo: Hosts, host: HostRecord) -> HostRecord:
        """Forget the host's agent credential: only a new enrollment (a token made for
        this hostname) brings an agent back."""
        return await HostInventory(call.ctx).reset_agent(host)

    @action("POST", "/lock")
    async def lock(self, call: Call, repo: Hosts, host: HostRecord) -> HostRecord:
        """Lock a host (hostname, management address and personality change only then)."""
        return await HostInventory(call.ctx).lock(host)

    @action("POST", "/unlock")
    async def unlock(self, call: Call, repo: Hosts, host: HostRecord) -> HostRecord:
        """Unlock a host (it needs a personality)."""
        return await HostInventory(call.ctx).unlock(host)

    @action("POST", "/upgrade", body=UpgradeRequest)
    async def upgrade(self, call: Call, repo: Hosts, host: HostRecord) -> HostRecord:
        """Set the load a locked host is to run (never on an edgeworker)."""
        load = call.model(UpgradeRequest).load
        return await HostInventory(call.ctx).upgrade(host, load=load)

    @action("POST", "/labels", body=LabelsUpdate)
    async def labels(self, call: Call, repo: Hosts, host: HostRecord) -> HostRecord:
        """Add, change or remove Kubernetes labels."""
        return await HostInventory(call.ctx).set_labels(host, call.model(LabelsUpdate))


HOST = Host()


def host_view(host: HostRecord) -> dict[str, Any]:
    """A host on the wire (for operators and for its agent)."""
    return {
        **HOST.copy(host),
        "capacity": capacity(host),
        "agent_enrolled": host.credential_hash is not None,
        "last_heartbeat_at": epoch_iso(host.last_heartbeat_at),
        "created_at": iso(host.created_at),
        "updated_at": iso(host.updated_at),
    }
