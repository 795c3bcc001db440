"""Resolving a scope expression against the fleet: which sites does it name?

The parser knows only text; the fleet knows names, labels and measured round-trip
times. ``resolve_expr`` replaces every atom by the sites it names, so what is left is a
tree of ``Site``, ``Both`` and ``Alt`` that the evaluator can run without asking the
fleet again. A multi-site atom (``*``, ``@region=eu``, ``around(Paris, 20ms)``) means
"all of them", so it becomes a ``Both`` of its sites.

Resolution also simplifies, without changing what runs: a ``Both`` inside a ``Both``
(and an ``Alt`` inside an ``Alt``) is flattened, and a site repeated in one group runs
once (``Berlin&*`` must not create the server twice in Berlin). A group left with one
member is that member. Sites of a multi-site atom come in the fleet view's order.

A name the fleet does not know, or a selector that matches no site, is the user's
mistake: ``ScopeResolutionError`` (a 400) says which, before any call is made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

from edgefed.core.errors import BadRequest
from edgefed.core.scope import (
    AllSites,
    Alt,
    Around,
    Both,
    Expr,
    Label,
    Scope,
    Site,
)

ResolvedExpr = Site | Both | Alt
"""An expression whose leaves are all ``Site``: what ``resolve_expr`` returns."""


class ScopeResolutionError(BadRequest):
    """A scope that parses but does not name sites of this fleet."""


class FleetView(Protocol):
    """What resolution needs to know about the fleet (the registry implements it)."""

    def site_names(self) -> Sequence[str]:
        """Every site of the fleet, in a stable order."""
        ...

    def labels_of(self, site: str) -> Mapping[str, str]:
        """The labels of one known site."""
        ...

    def rtt_ms(self, a: str, b: str) -> float | None:
        """The measured round-trip time between two sites, None when not measured."""
        ...


@dataclass(frozen=True)
class StaticFleetView:
    """A fleet view from plain values: for tests, tools and snapshots of the registry.

    ``rtts`` maps a pair of sites to their RTT in ms, in either order.
    """

    sites: Sequence[str]
    labels: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    rtts: Mapping[tuple[str, str], float] = field(default_factory=dict)

    def site_names(self) -> Sequence[str]:
        return self.sites

    def labels_of(self, site: str) -> Mapping[str, str]:
        return self.labels.get(site, {})

    def rtt_ms(self, a: str, b: str) -> float | None:
        if a == b:
            return 0.0
        found = self.rtts.get((a, b))
        return self.rtts.get((b, a)) if found is None else found


def resolve_scope(scope: Scope, fleet: FleetView) -> dict[str, ResolvedExpr]:
    """Resolve every entry of a scope; an error names the service whose entry is wrong."""
    resolved: dict[str, ResolvedExpr] = {}
    for service, expr in scope.items():
        try:
            resolved[service] = resolve_expr(expr, fleet)
        except ScopeResolutionError as exc:
            raise ScopeResolutionError(
                f"scope entry '{service}: {expr}': {exc.message}", service=service
            ) from exc
    return resolved


def resolve_expr(expr: Expr, fleet: FleetView) -> ResolvedExpr:
    """Replace every atom of ``expr`` by the sites it names in ``fleet``."""
    return _Resolver(fleet).resolve(expr)


def sites_of(expr: Expr, fleet: FleetView) -> tuple[str, ...]:
    """Every site an expression may touch, once each, in the order they appear."""
    found: dict[str, None] = {}
    stack: list[ResolvedExpr] = [resolve_expr(expr, fleet)]
    while stack:
        node = stack.pop()
        if isinstance(node, Site):
            found.setdefault(node.name)
        else:
            stack.extend(reversed(children(node)))
    return tuple(found)


class _Resolver:
    def __init__(self, fleet: FleetView) -> None:
        self.fleet = fleet
        self.names = tuple(fleet.site_names())
        self.known = frozenset(self.names)

    def resolve(self, expr: Expr) -> ResolvedExpr:
        if isinstance(expr, Site):
            return Site(self.known_site(expr.name))
        if isinstance(expr, AllSites):
            if not self.names:
                raise ScopeResolutionError("'*' names no site: the fleet is empty")
            return _group(Both, [Site(n) for n in self.names])
        if isinstance(expr, Label):
            return self.label(expr)
        if isinstance(expr, Around):
            return self.around(expr)
        if isinstance(expr, Both):
            return _group(Both, [self.resolve(p) for p in expr.parts])
        return _group(Alt, [self.resolve(o) for o in expr.options])

    def known_site(self, name: str) -> str:
        if name in self.known:
            return name
        import difflib  # here, a mistake's answer: 0.2 MiB an idle site does not keep

        message = f"unknown site {name!r}"
        by_case = [n for n in self.names if n.lower() == name.lower()]
        close = by_case or difflib.get_close_matches(name, self.names, n=3)
        if close:
            message += " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
        elif self.names:
            shown = ", ".join(self.names[:10])
            more = f" and {len(self.names) - 10} more" if len(self.names) > 10 else ""
            message += f" (the fleet has {shown}{more})"
        raise ScopeResolutionError(message, site=name)

    def label(self, expr: Label) -> ResolvedExpr:
        matched = [n for n in self.names if self.fleet.labels_of(n).get(expr.key) == expr.value]
        if not matched:
            values = sorted(
                {v for n in self.names if (v := self.fleet.labels_of(n).get(expr.key)) is not None}
            )
            hint = (
                f" (values of {expr.key!r} in the fleet: {', '.join(values)})"
                if values
                else f" (no site has a label {expr.key!r})"
            )
            raise ScopeResolutionError(f"no site has the label {expr}{hint}", label=str(expr))
        return _group(Both, [Site(n) for n in matched])

    def around(self, expr: Around) -> ResolvedExpr:
        center = self.known_site(expr.site)
        measured = [(n, self._rtt(center, n)) for n in self.names]
        # The center is always in its own neighbourhood: its RTT to itself is 0.
        matched = [
            n for n, rtt in measured if n == center or (rtt is not None and rtt <= expr.max_rtt_ms)
        ]
        return _group(Both, [Site(n) for n in matched])

    def _rtt(self, center: str, site: str) -> float | None:
        # RTTs are measured by each site towards its peers: use whichever end measured.
        rtt = self.fleet.rtt_ms(center, site)
        return self.fleet.rtt_ms(site, center) if rtt is None else rtt


def children(node: Both | Alt) -> tuple[ResolvedExpr, ...]:
    """The members of a resolved group (their leaves are all sites)."""
    members = node.parts if isinstance(node, Both) else node.options
    return cast(tuple[ResolvedExpr, ...], members)


def _group(kind: type[Both] | type[Alt], members: list[ResolvedExpr]) -> ResolvedExpr:
    """Flatten same-kind children, drop repeated sites, collapse a group of one."""
    flat: list[ResolvedExpr] = []
    seen_sites: set[str] = set()
    for member in members:
        inner = children(member) if isinstance(member, kind) else (member,)
        for node in inner:
            if isinstance(node, Site):
                if node.name in seen_sites:
                    continue
                seen_sites.add(node.name)
            flat.append(node)
    if len(flat) == 1:
        return flat[0]
    return Both(tuple(flat)) if kind is Both else Alt(tuple(flat))


__all__ = [
    "FleetView",
    "ResolvedExpr",
    "ScopeResolutionError",
    "StaticFleetView",
    "children",
    "resolve_expr",
    "resolve_scope",
    "sites_of",
]
