"""What a service contributes to a site app: its router, prefix and lifecycle hooks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter

if TYPE_CHECKING:
    from edgefed.api.context import SiteContext

Hook = Callable[["SiteContext"], Awaitable[Any]]


@dataclass(frozen=True)
class CatalogEntry:
    """One service in the Keystone catalog: ``url`` is a path below the site's public URL."""

    type: str
    name: str
    path: str


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    prefix: str
    router: APIRouter
    # Included under ``prefix`` before ``router``, each on its own: FastAPI walks every
    # router nested in an included router each time it matches a request against it,
    # so a hot path (token validation) matches faster in a small router of its own.
    hot_routers: tuple[APIRouter, ...] = ()
    catalog: tuple[CatalogEntry, ...] = ()
    on_start: Hook | None = None
    on_stop: Hook | None = None
    tags: tuple[str, ...] = field(default=())
