"""Which scope entries a request served here can honour, and the 400 for those it cannot.

The router sends a request to the site its own service's entry names; the request's
other entries say where the *services it consults* run. Some consultations follow the
scope (a boot takes its image from the image site, a volume attachment its volume from
the volume site: ``api/remote.py``); others can only use this site's own service (a
server's networks and ports are this site's, a snapshot lands in this site's image
service). For those, an entry that sends the service elsewhere is refused here, before
anything is done, naming the entry: silently using this site instead would do what the
user did not ask (docs/scope.md, "Which entries a request honours").

Entries for services a request does not consult are fine (the CLI sends one scope with
every call of a command), and so is an entry this site satisfies by itself: its own
name, or alternatives whose first is this site (tried first, and it answers).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgefed.api.context import SiteContext
from edgefed.api.remote import scope_entry
from edgefed.core.errors import BadRequest
from edgefed.core.scope import Alt, Expr, Site
from edgefed.core.scope_resolve import resolve_expr


class ScopeNotHonoured(BadRequest):
    """A scope entry names other sites for a service the request takes from here only."""


def served_here(ctx: SiteContext, expr: Expr) -> bool:
    """Whether ``expr`` is satisfied by this site alone (a site the fleet does not know
    raises the usual ``ScopeResolutionError``)."""
    if ctx.fleet is None:
        return expr == Site(ctx.name)
    resolved = resolve_expr(expr, ctx.fleet)
    first: Expr = resolved.options[0] if isinstance(resolved, Alt) else resolved
    return first == Site(ctx.name)


def require_here(
    ctx: SiteContext, asgi_scope: Mapping[str, Any], *, service: str, what: str
) -> None:
    """Refuse the request when its scope sends ``service`` away from this site, while
    ``what`` (e.g. "the networks of a server booted") can only use this site's."""
    expr = scope_entry(asgi_scope, service)
    if expr is None:
        return
    try:
        here = served_here(ctx, expr)
    except BadRequest as exc:  # the router says it so for the entries it resolves
        raise BadRequest(
            f"Invalid X-Scope header: scope entry '{service}: {expr}': {exc.message}"
        ) from exc
    if here:
        return
    raise ScopeNotHonoured(
        f"Scope entry '{service}: {expr}' cannot be honoured: {what} at {ctx.name} "
        f"use {ctx.name}'s own {service} service only. Name {ctx.name} for {service} "
        "in the scope, or leave the entry out."
    )
