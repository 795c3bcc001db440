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
class MovedVolume:
    """A volume as it goes to another site with its server (a relocation's ``"volumes":
    "move"``): what the destination's volume service makes again, with the same id;
    its type by name."""

    id: str
    name: str | None
    description: str | None
    size_gb: int
    volume_type: str
    bootable: bool
    metadata: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "description": self.description,
                "size": self.size_gb, "volume_type": self.volume_type,
                "bootable": self.bootable, "metadata": dict(self.metadata)}  # fmt: skip

    @classmethod
    def from_json(cls, raw: Any) -> MovedVolume:
        """ValueError naming what is wrong in a volume another site described."""
        if not isinstance(raw, dict):
            raise ValueError(f"a volume is an object: {raw!r}")
        size, meta = raw.get("size"), raw.get("metadata") or {}
        if not isinstance(size, int):
            raise ValueError(f"invalid volume size in {raw!r}")
        ok = (
            isinstance(raw.get("id"), str)
            and not isinstance(size, bool)
            and size > 0
            and isinstance(raw.get("volume_type"), str)
            and isinstance(meta, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
        )
        if not ok:
            raise ValueError(f"invalid volume {raw!r}")
        text = {k: raw.get(k) for k in ("name", "description")}
        return cls(
            id=raw["id"], name=text["name"] if isinstance(text["name"], str) else None,
            description=text["description"] if isinstance(text["description"], str) else None,
            size_gb=size, volume_type=raw["volume_type"], bootable=bool(raw.get("bootable")),
            metadata=dict(meta),
        )  # fmt: skip


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

    async def rehost(self, *, server_id: str, host: str) -> None:
        """The server's guest runs on ``host`` now (a live migration): its attachments
        of this site's volumes name that host (their connector and ``host_name``); those
        of other sites' volumes are left as they are."""
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

    # -- a volume that moves to another site with its server (relocation) --------------

    async def describe_for_move(self, *, volume_id: str) -> MovedVolume:
        """The volume as the destination makes it again; NotFound when it is gone,
        Conflict when it has snapshots (they would not move with it) or another
        server holds it too."""
        ...

    async def export_for_move(self, *, volume_id: str, directory: Path) -> tuple[Path, str]:
        """A file of the volume's data written in ``directory`` (the caller's to remove),
        only its allocated blocks (qcow2; raw where qemu-img is missing), and its
        format. The volume is not written meanwhile (its guest is stopped)."""
        ...

    async def check_arrivals(
        self, *, principal: Principal, project_id: str, volumes: list[MovedVolume]
    ) -> None:
        """Whether these volumes may be made here for the project: each type (by name)
        exists and the caller may use it, no volume here has the id, the quotas hold
        them all. The 4xx naming what stands in the way, else."""
        ...

    async def receive(
        self, *, project_id: str, user_id: str, volume: MovedVolume, data_file: Path,
        disk_format: str,
    ) -> None:  # fmt: skip
        """Make the volume here, the same id, ``available`` with the file's data; nothing
        to do when it exists already (a commit asked again). The 4xx naming the cause
        (its type gone, the quota)."""
        ...
