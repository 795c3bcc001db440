"""``limit``/``marker`` paging shared by the OpenStack collection APIs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from edgefed.core.errors import BadRequest, ValidationFailed

T = TypeVar("T")

MAX_LIMIT = 1000


def parse_limit(raw: str | None, *, default: int = MAX_LIMIT) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValidationFailed(f"limit must be an integer, got {raw!r}", field="limit") from exc
    if value < 0:
        raise ValidationFailed("limit must be zero or more", field="limit")
    return min(value, MAX_LIMIT)


def page(
    items: Sequence[T], *, limit: int, marker: str | None, key: Callable[[T], str]
) -> tuple[list[T], bool]:
    """Items after ``marker`` (by id), at most ``limit``; and whether more follow."""
    start = 0
    if marker:
        for i, item in enumerate(items):
            if key(item) == marker:
                start = i + 1
                break
        else:
            raise BadRequest(f"marker {marker} not found")
    chunk = list(items[start : start + limit])
    return chunk, start + limit < len(items)
