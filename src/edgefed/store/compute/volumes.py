"""A server's volumes (Nova's block device mappings of destination ``volume``).

Kept in the server's row (``servers.volumes``, a JSON list in attach order), changed
under the row's lock, so two attaches to one server never take the same device name
and the view of a server always lists what it holds. A mapping is ``attaching`` from
the moment it is recorded until the guest has the disk, then ``attached``; a site
killed in between finds it ``attaching``, and a retry of the same attach completes it.
"""

from __future__ import annotations

import string
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import select, update

from edgefed.core.errors import NotFound
from edgefed.store.compute.tables import LIVE, servers
from edgefed.store.engine import Store
from edgefed.store.schema import utcnow

# Device names a guest's volumes get, after its root disk (vda); Nova's hint only: the
# guest names its disks in the order it finds them.
DEVICE_NAMES = tuple(f"/dev/vd{letter}" for letter in string.ascii_lowercase[1:])


@dataclass(frozen=True, slots=True)
class VolumeMapping:
    volume_id: str
    device: str
    attachment_id: str | None = None  # the volume service's attachment
    bdm_id: str = ""
    boot_index: int | None = None  # 0: the root disk (boot from volume)
    delete_on_termination: bool = False
    tag: str | None = None
    state: str = "attaching"  # attaching, attached
    # The volume's connection, once the volume service gave it: a file on this machine.
    path: str | None = None
    disk_format: str = "raw"
    read_only: bool = False
    # A volume of another site: that site, and its NBD export for this attachment.
    site: str | None = None
    nbd: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> VolumeMapping:
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})


class DeviceInUse(Exception):
    """The device name asked for is taken on that server."""


class NoFreeDevice(Exception):
    """Every device name is taken on that server."""


def mappings_of(raw: list[dict[str, Any]] | None) -> list[VolumeMapping]:
    return [VolumeMapping.from_json(item) for item in raw or []]


class ServerVolumes:
    def __init__(self, store: Store):
        self.store = store

    async def _locked(self, conn: Any, server_id: str) -> list[VolumeMapping]:
        query = select(servers.c.volumes).where(servers.c.id == server_id, LIVE).with_for_update()
        row = (await conn.execute(query)).first()
        if row is None:
            raise NotFound(f"Instance {server_id} could not be found.")
        return mappings_of(row.volumes)

    async def _write(self, conn: Any, server_id: str, mappings: list[VolumeMapping]) -> None:
        await conn.execute(
            update(servers)
            .where(servers.c.id == server_id)
            .values(volumes=[m.to_json() for m in mappings], updated_at=utcnow())
        )

    async def list(self, server_id: str) -> list[VolumeMapping]:
        query = select(servers.c.volumes).where(servers.c.id == server_id)
        async with self.store.read() as conn:
            row = (await conn.execute(query)).first()
        return mappings_of(row.volumes) if row is not None else []

    async def add(
        self,
        server_id: str,
        *,
        volume_id: str,
        device: str | None = None,
        boot_index: int | None = None,
        delete_on_termination: bool = False,
        tag: str | None = None,
        site: str | None = None,
    ) -> tuple[VolumeMapping, bool]:
        """Record the volume on the server (``attaching``), with ``device`` or the first
        free name; (the mapping, True) or, when the volume is already there, (that
        mapping, False). DeviceInUse, NoFreeDevice when no name can be given."""
        async with self.store.write() as conn:
            mappings = await self._locked(conn, server_id)
            for existing in mappings:
                if existing.volume_id == volume_id:
                    return existing, False
            taken = {m.device for m in mappings} | {"/dev/vda"}
            if device is not None:
                if device in taken:
                    raise DeviceInUse(device)
            else:
                device = next((d for d in DEVICE_NAMES if d not in taken), None)
                if device is None:
                    raise NoFreeDevice(server_id)
            mapping = VolumeMapping(
                volume_id=volume_id,
                device=device,
                bdm_id=str(uuid.uuid4()),
                boot_index=boot_index,
                delete_on_termination=delete_on_termination,
                tag=tag,
                site=site,
            )
            await self._write(conn, server_id, [*mappings, mapping])
        return mapping, True

    async def change(self, server_id: str, volume_id: str, **values: Any) -> VolumeMapping:
        """Set fields of the server's mapping of ``volume_id``; NotFound without one."""
        async with self.store.write() as conn:
            mappings = await self._locked(conn, server_id)
            changed: VolumeMapping | None = None
            for i, existing in enumerate(mappings):
                if existing.volume_id == volume_id:
                    changed = mappings[i] = VolumeMapping.from_json(
                        {**existing.to_json(), **values}
                    )
            if changed is None:
                raise NotFound(f"No volume Block Device Mapping with id {volume_id}.")
            await self._write(conn, server_id, mappings)
        return changed

    async def remove(self, server_id: str, volume_id: str) -> None:
        """Forget the server's mapping of ``volume_id`` (nothing to do without one)."""
        async with self.store.write() as conn:
            mappings = await self._locked(conn, server_id)
            kept = [m for m in mappings if m.volume_id != volume_id]
            if len(kept) != len(mappings):
                await self._write(conn, server_id, kept)
