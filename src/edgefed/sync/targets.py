"""Where a marked resource goes: a target set, written like a scope expression.

``Denver``, ``Denver,Paris`` (a list), ``@tier=edge`` (a label selector), ``*`` (every
site) or any scope expression (``@region=eu&Denver``): the union of the sites it names.
A target set is stored as text and resolved when the resource is routed, so a site
that joins later with a matching label receives what was marked before it came.
"""

from __future__ import annotations

from edgefed.core.errors import ValidationFailed
from edgefed.core.scope import ScopeSyntaxError, parse_expr
from edgefed.core.scope_resolve import FleetView, ScopeResolutionError, sites_of


def normalise(text: str) -> str:
    """The canonical form of a target set; ValidationFailed names what is wrong."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise ValidationFailed("a target set needs at least one site, selector or '*'", field="to")
    expr = "&".join(f"({p})" if any(c in p for c in "|&") else p for p in parts)
    try:
        parse_expr(expr)
    except ScopeSyntaxError as exc:
        raise ValidationFailed(f"bad target set {text!r}: {exc}", field="to") from exc
    return ",".join(parts)


def resolve(text: str, fleet: FleetView) -> set[str]:
    """The sites a stored target set names now (unknown names and empty selectors: none)."""
    out: set[str] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.update(sites_of(parse_expr(part), fleet))
        except (ScopeSyntaxError, ScopeResolutionError):
            continue
    return out
