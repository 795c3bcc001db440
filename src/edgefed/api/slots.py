"""Each service's private state on the site context, found by its class.

A service keeps what it builds at start (its repositories, drivers, caches) in
``SiteContext.slots`` under the object's own class, and its handlers find it again by
that class: ``ctx.slots.require(ComputeState)``. Why a class and not a name: mypy knows
the type of what comes back, and only the room that defines a class can name it, so a
service cannot reach into another's state without importing it, which the import
contracts forbid (a string key is seen by neither).

What one room offers another does not go here: it is a Protocol in ``api/`` and a typed
field of the site context (``authority``, ``revoker``, ``sync_status``). A service's
background work is declared in its ``ServiceSpec`` and run by the app (api/service.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class Slots:
    """At most one object per class."""

    __slots__ = ("_by_class",)

    def __init__(self) -> None:
        self._by_class: dict[type[Any], Any] = {}

    def put(self, value: T) -> T:
        """Keep ``value`` under its class, in place of any earlier one; ``value``."""
        self._by_class[type(value)] = value
        return value

    def get(self, kind: type[T]) -> T | None:
        value: T | None = self._by_class.get(kind)
        return value

    def require(self, kind: type[T]) -> T:
        """The object of class ``kind``; LookupError when its service has not put one
        (it has not started, or this site runs without it)."""
        value: T | None = self._by_class.get(kind)
        if value is None:
            raise LookupError(f"no {kind.__name__} on this site: its service has not started")
        return value

    def setdefault(self, kind: type[T], make: Callable[[], T]) -> T:
        """The object of class ``kind``, made by ``make()`` and kept on first use."""
        value: T | None = self._by_class.get(kind)
        if value is None:
            value = self._by_class[kind] = make()
        return value

    def pop(self, kind: type[T]) -> T | None:
        value: T | None = self._by_class.pop(kind, None)
        return value
