"""The scope language's syntax tree: immutable nodes that print back as canonical text.

A scope maps services to expressions: ``Site``, ``AllSites`` (``*``), ``Label``
(``@key=value``), ``Around`` (``around(Paris, 20ms)``), ``Both`` (``A&B``) and ``Alt``
(``A|B``). The tree keeps the structure the user wrote (``(A&B)&C`` stays nested) so
that ``parse_expr(str(expr)) == expr`` holds for every tree; flattening and
de-duplication happen at resolution (scope_resolve.py). The parser that builds these
trees from text is scope.py; ``ScopeSyntaxError`` is here because every step of the
language raises it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Final

from edgefed.core.errors import BadRequest
from edgefed.core.settings import SITE_NAME_RE

SERVICES: Final = ("identity", "compute", "image", "volume", "network", "placement", "fleet")
SERVICE_ALIASES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "keystone": "identity",
        "nova": "compute",
        "glance": "image",
        "cinder": "volume",
        "neutron": "network",
        "edge": "fleet",
    }
)
MAX_SCOPE_LENGTH: Final = 4096
MAX_NESTING: Final = 32
MAX_RTT_MS: Final = 1_000_000.0

LABEL_KEY_RE: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,252}$")
LABEL_VALUE_RE: Final = LABEL_KEY_RE


class ScopeSyntaxError(BadRequest):
    """A scope that does not parse; the message quotes it and points at the problem."""

    def __init__(self, *, scope: str, position: int, reason: str, expected: str | None = None):
        shown = "".join(ch if ch.isprintable() else " " for ch in scope)
        message = f"{reason} at position {position} in '{shown}'"
        if expected:
            message += f" (expected {expected})"
        message += f"\n  {shown}\n  {' ' * position}^"
        super().__init__(message, scope=scope, position=position)
        self.scope = scope
        self.position = position
        self.reason = reason
        self.expected = expected


@dataclass(frozen=True, slots=True)
class Site:
    """One site, by name."""

    name: str

    def __post_init__(self) -> None:
        if not SITE_NAME_RE.match(self.name):
            raise ValueError(f"invalid site name {self.name!r}")

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class AllSites:
    """``*``: every site of the fleet."""

    def __str__(self) -> str:
        return "*"


@dataclass(frozen=True, slots=True)
class Label:
    """``@key=value``: every site that carries this label."""

    key: str
    value: str

    def __post_init__(self) -> None:
        if not LABEL_KEY_RE.match(self.key) or not LABEL_VALUE_RE.match(self.value):
            raise ValueError(f"invalid label {self.key!r}={self.value!r}")

    def __str__(self) -> str:
        return f"@{self.key}={self.value}"


@dataclass(frozen=True, slots=True)
class Around:
    """``around(Paris, 20ms)``: every site whose measured RTT to ``site`` is <= the bound."""

    site: str
    max_rtt_ms: float

    def __post_init__(self) -> None:
        if not SITE_NAME_RE.match(self.site):
            raise ValueError(f"invalid site name {self.site!r}")
        if not (math.isfinite(self.max_rtt_ms) and 0 <= self.max_rtt_ms <= MAX_RTT_MS):
            raise ValueError(f"RTT bound {self.max_rtt_ms!r} is not within 0-{MAX_RTT_MS:g} ms")

    def __str__(self) -> str:
        return f"around({self.site}, {format_ms(self.max_rtt_ms)}ms)"


@dataclass(frozen=True, slots=True)
class Both:
    """``A&B``: every part, in parallel; succeeds only if all of them succeed."""

    parts: tuple[Expr, ...]

    def __post_init__(self) -> None:
        if len(self.parts) < 2:
            raise ValueError("Both needs at least two parts")

    def __str__(self) -> str:
        return "&".join(_wrap(p, inside=Both) for p in self.parts)


@dataclass(frozen=True, slots=True)
class Alt:
    """``A|B``: try the options left to right; the first success wins."""

    options: tuple[Expr, ...]

    def __post_init__(self) -> None:
        if len(self.options) < 2:
            raise ValueError("Alt needs at least two options")

    def __str__(self) -> str:
        return "|".join(_wrap(o, inside=Alt) for o in self.options)


Expr = Site | AllSites | Label | Around | Both | Alt


def _wrap(child: Expr, *, inside: type[Both] | type[Alt]) -> str:
    # A nested operator keeps its parentheses, so the printed text parses back to the
    # same tree: an Alt under a Both (precedence), and any operator directly under the
    # same operator (the tree keeps the user's grouping).
    if isinstance(child, Alt) or (isinstance(child, Both) and inside is Both):
        return f"({child})"
    return str(child)


def format_ms(value: float) -> str:
    """A number without exponent or trailing ``.0`` that reads back as the same float."""
    if value.is_integer():
        return str(int(value))
    return format(Decimal(repr(value)), "f")


def canonical_service(name: str) -> str | None:
    """``nova`` -> ``compute``; None for a name that is not a service."""
    lowered = name.lower()
    if lowered in SERVICES:
        return lowered
    return SERVICE_ALIASES.get(lowered)


class Scope(Mapping[str, Expr]):
    """A parsed scope: canonical service name -> expression, in the order written."""

    __slots__ = ("_entries",)

    def __init__(self, entries: Mapping[str, Expr]) -> None:
        normalised: dict[str, Expr] = {}
        for name, expr in entries.items():
            service = canonical_service(name)
            if service is None:
                raise ValueError(f"unknown service {name!r}")
            if service in normalised:
                raise ValueError(f"duplicate service {service!r}")
            normalised[service] = expr
        if not normalised:
            raise ValueError("a scope needs at least one entry")
        self._entries: Mapping[str, Expr] = MappingProxyType(normalised)

    def __getitem__(self, service: str) -> Expr:
        return self._entries[canonical_service(service) or service]

    def __contains__(self, service: object) -> bool:
        return isinstance(service, str) and (canonical_service(service) in self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __hash__(self) -> int:
        return hash(frozenset(self._entries.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._entries) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Scope({dict(self._entries)!r})"

    def __str__(self) -> str:
        return "{" + ", ".join(f"{s}: {e}" for s, e in self._entries.items()) + "}"

    def without(self, service: str) -> Scope | None:
        """The scope minus one service's entry (None when nothing is left)."""
        key = canonical_service(service) or service
        rest = {s: e for s, e in self._entries.items() if s != key}
        return Scope(rest) if rest else None
