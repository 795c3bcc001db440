"""The members of one image: projects an owner shares a ``shared`` image with, and
their answers (``pending``, ``accepted``, ``rejected``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import IntegrityError

from edgefed.core.errors import Conflict
from edgefed.store.engine import Store
from edgefed.store.image.tables import MemberRecord, NewMember, image_members
from edgefed.store.records import RecordMapper, RecordRepository


class ImageMembers(RecordRepository[MemberRecord, NewMember]):
    """The members of ``image_id``; a member is known by its project's id."""

    table = image_members
    mapper = RecordMapper(MemberRecord)
    key = "member_id"
    scoped_by = ("image_id",)
    order = ("created_at", "member_id")

    def __init__(self, store: Store, image_id: str):
        def taken(exc: IntegrityError, values: Mapping[str, Any]) -> Exception:
            return Conflict(f"Member {values['member_id']} already exists for image {image_id}.")

        super().__init__(store, scope={"image_id": image_id}, conflict=taken)
