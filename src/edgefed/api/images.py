"""What the image service offers other rooms: find an image the caller may see, read its
bytes, and make an image of a file (the volume service's ``os-volume_upload_image``).

The port the image service fills (``SiteContext.images``, None on a site without it).
The volume service reads an image's size and formats to make a volume of it, and
uploads a volume's data as a new image, without importing the image service.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from edgefed.api.auth import Principal


@dataclass(frozen=True, slots=True)
class ImageFacts:
    id: str
    name: str | None
    status: str
    size: int | None
    virtual_size: int | None
    min_disk: int
    min_ram: int
    disk_format: str | None
    container_format: str | None
    checksum: str | None


class ImageCatalog(Protocol):
    async def find(self, *, image_id: str, principal: Principal) -> ImageFacts | None:
        """The image, if it exists and the caller may see it (Glance's visibility)."""
        ...

    async def data_file(self, *, image_id: str) -> Path | None:
        """The file holding the image's bytes on this site, or None (no data here)."""
        ...

    async def create_from_file(
        self,
        *,
        principal: Principal,
        name: str,
        disk_format: str,
        container_format: str,
        visibility: str,
        protected: bool,
        data_file: Path | None,
    ) -> ImageFacts:
        """A new image of the caller's project holding the bytes of ``data_file``
        (``active``), or ``queued`` without data when ``data_file`` is None."""
        ...
