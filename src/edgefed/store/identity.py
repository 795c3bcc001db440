"""Tables and repository of the identity service (owned by that service's author)."""

from __future__ import annotations

from edgefed.store.schema import metadata  # noqa: F401
