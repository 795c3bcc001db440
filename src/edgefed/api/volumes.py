"""What the volume service offers other rooms: find a volume the caller may see, and
attach it to a server of this site (reserve, connect, complete; release at detach).

The port the volume service fills (``SiteContext.volumes``, None on a site without it).
The compute service attaches volumes to its servers through it, as Nova calls Cinder's
attachments API, without importing the volume service. Refusals are ``core.errors``
classes whose message names the cause (a volume in use, in error, of another project).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from edgefed.api.auth import Principal


@dataclass(frozen=True, slots=True)
class VolumeFacts:
    id: str
    name: str | None
    project_id: str
    size_gb: int
    status: str
    bootable: bool
    multiattach: bool
    readonly: bool


@dataclass(frozen=True, slots=True)
class VolumeConnection:
    """How the server's host reaches the volume: a file on this site's machine (a host
    that cannot read it asks for an export, ``VolumeCatalog.export_to_host``)."""

    attachment_id: str
    volume_id: str
    path: Path
    disk_format: str
    read_only: bool


@dataclass(frozen=True, slots=True)
class VolumePool:
    """The site's volume storage: its size and free space, what the volumes are sized
    to, and what they may add up to (thin provisioning)."""

    total_gb: float
    free_gb: float
    allocated_gb: int
    capacity_gb: float
    volumes: int


class VolumeCatalog(Protocol):
    async def pool(self) -> VolumePool:
        """The volume pool's figures, for fleet status and telemetry."""
        ...

    async def find(self, *, volume_id: str, principal: Principal) -> VolumeFacts | None:
        """The volume, if it exists and the caller may see it."""
        ...

    async def create(
        self, *, principal: Principal, size_gb: int, name: str, image_id: str | None = None
    ) -> VolumeFacts:
        """A new volume of the caller's project, ``available`` (its data written): empty,
        or holding the image's bytes. The volume service's 4xx when it cannot be made
        (quota, an image too large or unknown)."""
        ...

    async def connect(self, *, volume_id: str, server_id: str, host: str) -> VolumeConnection:
        """Reserve the volume for ``server_id`` and give its connection (an attachment
        ``attaching``, the volume ``attaching``); the caller checked that the volume is
        one it may use (``find``). BadRequest naming the state when it cannot be
        attached now."""
        ...

    async def complete(self, *, attachment_id: str, mountpoint: str) -> None:
        """The guest has the volume: the attachment ``attached``, the volume ``in-use``."""
        ...

    async def export_to_host(self, *, volume_id: str, server_id: str, host: str) -> dict[str, Any]:
        """The volume over the network for a host that cannot read this site's files (a
        host on another machine): the NBD export of the attachment that ``server_id``
        on ``host`` holds (host, port, export, tls_psk_identity, tls_psk_key), made for
        that attachment alone and stopped with it. NotFound when the server on that host
        holds no attachment of the volume; Conflict when no export can be started."""
        ...

    async def connect_for_site(
        self, *, volume_id: str, server_id: str, site: str, mountpoint: str
    ) -> dict[str, Any]:
        """An attachment of the volume, already complete, for ``server_id`` once it runs
        at another ``site`` (a relocation that leaves the volume here): its NBD export
        made for it alone. ``{"attachment_id", "nbd": {host, port, export,
        tls_psk_identity, tls_psk_key}, "read_only"}``; the site the connector names is
        the one that may release it. Conflict when no export can be started."""
        ...

    async def release(self, *, attachment_id: str) -> None:
        """The attachment is gone (detached, or the attach failed); nothing to do when
        it was already removed."""
        ...

    async def delete(self, *, volume_id: str) -> None:
        """Delete a volume no server uses any more (``delete_on_termination``); nothing
        to do when it is gone."""
        ...
