"""The image service's side of the ``ImageCatalog`` port (api/images.py): what the
volume service asks of images, answered with Glance's own visibility rules."""

from __future__ import annotations

from pathlib import Path

from edgefed.api.auth import Principal
from edgefed.api.context import SiteContext
from edgefed.api.images import ImageFacts
from edgefed.services.image.access import is_owner_reader, require_may_publicize
from edgefed.store.image import ImageRecord, ImageRepository, blob_path


def facts(record: ImageRecord) -> ImageFacts:
    return ImageFacts(
        id=record.id,
        name=record.name,
        status=record.status,
        size=record.size,
        virtual_size=record.virtual_size,
        min_disk=record.min_disk,
        min_ram=record.min_ram,
        disk_format=record.disk_format,
        container_format=record.container_format,
        checksum=record.checksum,
    )


class LocalImages:
    """This site's images."""

    def __init__(self, ctx: SiteContext):
        self.ctx = ctx
        self.images = ImageRepository(ctx.store)

    async def find(self, *, image_id: str, principal: Principal) -> ImageFacts | None:
        record = await self.images.get(image_id)
        if record is None:
            return None
        if (
            principal.is_admin
            or is_owner_reader(principal, record)
            or record.visibility in ("public", "community")
        ):
            return facts(record)
        project_id = principal.project_id
        if record.visibility == "shared" and project_id is not None:
            if await self.images.member(record.id, project_id) is not None:
                return facts(record)
        return None

    async def data_file(self, *, image_id: str) -> Path | None:
        record = await self.images.get(image_id)
        if record is None or record.blob_sha256 is None:
            return None
        path = blob_path(self.ctx.settings.data_dir, record)
        return path if path.exists() else None

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
        require_may_publicize(principal, visibility)
        record = await self.images.create(
            owner=principal.project_id,
            name=name,
            disk_format=disk_format,
            container_format=container_format,
            visibility=visibility,
            protected=protected,
            data_file=data_file,
            data_dir=self.ctx.settings.data_dir,
        )
        return facts(record)
