"""What a resource reads and writes through: the store's side of a resource, typed.

A repository takes and returns the service's own record types (frozen dataclasses of
``edgefed.store``), never rows or tables, so nothing of SQLAlchemy crosses into
``api`` or ``services``. ``edgefed.store.records.RecordRepository`` implements it for a
plain table; a service with more to say (a cascade, an IP allocation) subclasses that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeVar

R_co = TypeVar("R_co", covariant=True)
N_contra = TypeVar("N_contra", contravariant=True)

# Record field -> value; a list, tuple or set matches any of its values.
Filters = Mapping[str, object]


class Repository(Protocol[R_co, N_contra]):
    """Records of one kind: ``R_co`` read back, ``N_contra`` (a new record) written."""

    async def get(self, *, id: str) -> R_co | None:
        """The record, or None."""

    async def list(
        self, *, filters: Filters | None = None, limit: int | None = None, after: str | None = None
    ) -> Sequence[R_co]:
        """Records matching ``filters``, in the repository's order: at most ``limit`` of
        them, starting after the record whose id is ``after`` (LookupError when there is
        no such record)."""

    async def create(self, *, new: N_contra) -> R_co:
        """Store a new record; a conflict (a name taken) raises the service's 409."""

    async def update(self, *, id: str, changes: Mapping[str, Any]) -> R_co | None:
        """Set ``changes`` (record field → value); the record after, or None if gone."""

    async def delete(self, *, id: str) -> bool:
        """Delete the record; whether there was one."""
