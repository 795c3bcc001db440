"""The volume service's private state on the site context (``ctx.slots``)."""

from __future__ import annotations

from dataclasses import dataclass

from edgefed.api.resource import Call
from edgefed.services.volume.backend import VolumeBackend
from edgefed.services.volume.exports import NbdExports


@dataclass(frozen=True, slots=True)
class VolumeState:
    backend: VolumeBackend
    # The host name volumes show in ``os-vol-host-attr:host`` (Cinder's host@backend#pool).
    host: str
    # The exports of volumes attached at other sites (NBD over TLS, one per attachment).
    exports: NbdExports


def state_of(call: Call) -> VolumeState:
    return call.ctx.slots.require(VolumeState)
