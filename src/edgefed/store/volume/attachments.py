"""Attachments and the volume's attach state machine, both changed in one transaction:

    available → reserved → attaching → in-use → detaching → available

An attachment is ``reserved`` when created without a connector, ``attaching`` once a
connector is given (the connection is "initialized"), ``attached`` when completed; its
deletion puts the volume back to ``available`` when no other attachment remains (to
``in-use`` or ``reserved`` when others do). A volume that is not multiattach is
reserved by one server at a time; the same server may reserve it again (Nova's
live migration makes a second attachment for the destination host).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import delete, insert, select, update

from edgefed.store.engine import AsyncConnection
from edgefed.store.records import RecordMapper, RecordRepository
from edgefed.store.volume.tables import AttachmentRecord, attachments, volumes
from edgefed.store.volume.volumes import StateConflict


class Attachments(RecordRepository[AttachmentRecord, AttachmentRecord]):
    table = attachments
    mapper = RecordMapper(AttachmentRecord)

    async def _volume(self, conn: AsyncConnection, volume_id: str) -> Any:
        """The volume's row, locked to the end of the transaction on PostgreSQL (SQLite
        has one writer): the changes of one volume's attachments take turns."""
        query = select(volumes).where(volumes.c.id == volume_id).with_for_update()
        row = (await conn.execute(query)).first()
        if row is None:
            raise StateConflict(None)
        return row

    async def _others(self, conn: AsyncConnection, volume_id: str, but: str) -> list[Any]:
        return list(
            await conn.execute(
                select(attachments).where(
                    attachments.c.volume_id == volume_id, attachments.c.id != but
                )
            )
        )

    async def _set_volume(self, conn: AsyncConnection, volume_id: str, **values: Any) -> None:
        await conn.execute(
            update(volumes).where(volumes.c.id == volume_id).values(**values, updated_at=self.now())
        )

    async def reserve(
        self,
        *,
        volume_id: str,
        project_id: str,
        instance_uuid: str | None,
        connector: Mapping[str, Any] | None,
        connection_info: Mapping[str, Any],
        attach_mode: str,
    ) -> AttachmentRecord:
        """A new attachment of the volume, ``reserved`` (``attaching`` with a connector);
        StateConflict when the volume may not be reserved now."""
        values = self.stamped(
            {
                "volume_id": volume_id,
                "project_id": project_id,
                "instance_uuid": instance_uuid,
                "attached_host": (connector or {}).get("host"),
                "mountpoint": (connector or {}).get("mountpoint"),
                "attach_mode": attach_mode,
                "attach_status": "attaching" if connector else "reserved",
                "connector": dict(connector or {}),
                "connection_info": dict(connection_info) if connector else {},
                "attach_time": None,
            }
        )
        async with self.store.write() as conn:
            volume = await self._volume(conn, volume_id)
            if "error" in volume.status:
                raise StateConflict(volume.status, reason="error")
            allowed = ("available", "in-use", "reserved") if volume.multiattach else ("available",)
            if volume.status not in allowed:
                same_server = instance_uuid is not None and any(
                    other.instance_uuid == instance_uuid
                    for other in await self._others(conn, volume_id, "")
                )
                if not (same_server and volume.status in ("in-use", "reserved")):
                    raise StateConflict(volume.status)
            await conn.execute(insert(attachments).values(**values))
            await self._set_volume(conn, volume_id, status="attaching" if connector else "reserved")
        return await self._found(values["id"])

    async def _found(self, id: str) -> AttachmentRecord:
        found = await self.get(id=id)
        assert found is not None
        return found

    async def connect(
        self,
        id: str,
        *,
        connector: Mapping[str, Any],
        connection_info: Mapping[str, Any],
        attach_mode: str | None = None,
    ) -> AttachmentRecord:
        """Give the attachment its connector: it and its volume become ``attaching``."""
        async with self.store.write() as conn:
            row = (await conn.execute(select(attachments).where(attachments.c.id == id))).first()
            if row is None:
                raise StateConflict(None)
            volume = await self._volume(conn, row.volume_id)
            if "error" in volume.status:
                raise StateConflict(volume.status, reason="error")
            values: dict[str, Any] = {
                "connector": dict(connector),
                "connection_info": dict(connection_info),
                "attached_host": connector.get("host"),
                "mountpoint": connector.get("mountpoint") or row.mountpoint,
                "updated_at": self.now(),
            }
            if attach_mode is not None:
                values["attach_mode"] = attach_mode
            if row.attach_status != "attached":
                values["attach_status"] = "attaching"
                await self._set_volume(conn, row.volume_id, status="attaching")
            await conn.execute(update(attachments).where(attachments.c.id == id).values(**values))
        return await self._found(id)

    async def complete(
        self, id: str, *, mountpoint: str | None = None, instance_uuid: str | None = None
    ) -> AttachmentRecord:
        """The attachment ``attached``, its volume ``in-use`` and ``attached``."""
        now = self.now()
        async with self.store.write() as conn:
            row = (await conn.execute(select(attachments).where(attachments.c.id == id))).first()
            if row is None:
                raise StateConflict(None)
            await self._volume(conn, row.volume_id)
            values: dict[str, Any] = {"attach_status": "attached", "attach_time": now}
            if mountpoint is not None:
                values["mountpoint"] = mountpoint
            if instance_uuid is not None:
                values["instance_uuid"] = instance_uuid
            await conn.execute(
                update(attachments).where(attachments.c.id == id).values(**values, updated_at=now)
            )
            await self._set_volume(conn, row.volume_id, status="in-use", attach_status="attached")
        return await self._found(id)

    async def attach_now(
        self,
        *,
        volume_id: str,
        project_id: str,
        instance_uuid: str | None,
        host: str | None,
        mountpoint: str | None,
        attach_mode: str,
    ) -> AttachmentRecord:
        """The old ``os-attach``: an attachment made ``attached`` at once, of a volume
        ``attaching`` (reserved by ``os-reserve``) or ``available``; StateConflict when
        another server holds it (not multiattach)."""
        now = self.now()
        values = self.stamped(
            {
                "volume_id": volume_id,
                "project_id": project_id,
                "instance_uuid": instance_uuid,
                "attached_host": host,
                "mountpoint": mountpoint,
                "attach_mode": attach_mode,
                "attach_status": "attached",
                "connector": {},
                "connection_info": {},
                "attach_time": now,
            }
        )
        async with self.store.write() as conn:
            volume = await self._volume(conn, volume_id)
            allowed = ["attaching", "available"]
            if volume.multiattach:
                allowed += ["in-use", "reserved"]
            if volume.status not in allowed:
                raise StateConflict(volume.status)
            await conn.execute(insert(attachments).values(**values))
            await self._set_volume(conn, volume_id, status="in-use", attach_status="attached")
        return await self._found(values["id"])

    async def remove(self, id: str) -> None:
        """Delete the attachment; its volume is ``available`` and ``detached`` when no
        other attachment remains, else ``in-use`` (another is attached) or ``reserved``."""
        async with self.store.write() as conn:
            row = (await conn.execute(select(attachments).where(attachments.c.id == id))).first()
            if row is None:
                raise StateConflict(None)
            await self._volume(conn, row.volume_id)
            gone = await conn.execute(delete(attachments).where(attachments.c.id == id))
            if gone.rowcount == 0:  # removed by a request that held the volume first
                raise StateConflict(None)
            others = await self._others(conn, row.volume_id, id)
            if any(o.attach_status == "attached" for o in others):
                await self._set_volume(conn, row.volume_id, status="in-use")
            elif others:
                await self._set_volume(
                    conn, row.volume_id, status="reserved", attach_status="detached"
                )
            else:
                await self._set_volume(
                    conn, row.volume_id, status="available", attach_status="detached"
                )
