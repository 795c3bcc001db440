"""Revocation events held in memory, indexed, so checking a token costs no database trip.

An event matches a token when the token was issued at or before ``issued_before`` and
every non-null field of the event equals the token's (``core.revocation``). Events are
indexed by *shape* (which fields they set): per shape, the token's values are one key,
and the latest ``issued_before`` under that key decides. A check is one dict lookup
per shape in use (a handful), whatever the number of events.

The list also keeps, per origin site, how far this site holds that site's numbered
events without a gap (``digest``), for gossip to fill gaps from any peer; and when this
site last caught up with the fleet, so that a site that was cut off refuses tokens of
other sites until it has heard their revocations (``check_fresh``).
"""

from __future__ import annotations

import collections
import dataclasses
import operator
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from edgefed.core.errors import Unauthorized
from edgefed.core.revocation import MATCH_FIELDS, RevocationEvent, token_fields

Shape = tuple[int, ...]  # indices into MATCH_FIELDS
ARRIVALS_KEPT = 256


def _shape(event: RevocationEvent) -> Shape:
    return tuple(i for i, f in enumerate(MATCH_FIELDS) if getattr(event, f) is not None)


class RevocationList:
    def __init__(
        self,
        events: Iterable[RevocationEvent] = (),
        *,
        self_name: str = "",
        max_staleness: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], float] = time.time,
    ):
        self.self_name = self_name
        # shape -> (values of its fields) -> latest issued_before; and per shape, the
        # getter that picks its key out of a token's values (a tuple, or one value)
        self._index: dict[Shape, dict[Any, float]] = {}
        self._lookups: list[tuple[Callable[[tuple[Any, ...]], Any], dict[Any, float]]] = []
        self._events: list[RevocationEvent] = []
        # origin -> seq -> event; origin -> gap-free watermark; origin -> floor
        self._numbered: dict[str, dict[int, RevocationEvent]] = {}
        self._upto: dict[str, int] = {}
        self._floor: dict[str, int] = {}
        self.generation = 0
        # Foreign tokens are refused after this long without catching up (0: never).
        self.max_staleness = max_staleness
        self.monotonic = monotonic
        self.clock = clock
        # The latest numbered events that arrived, with when (for operators and benchmarks).
        self.arrivals: collections.deque[tuple[str, int, float]] = collections.deque(
            maxlen=ARRIVALS_KEPT
        )
        self._synced_at: float | None = None
        # Called with each event this site makes (the fleet service spreads them).
        self.listeners: list[Callable[[RevocationEvent], None]] = []
        for event in events:
            self._insert(event)

    def __len__(self) -> int:
        return len(self._events)

    # ---- adding -------------------------------------------------------------------------

    def add(self, event: RevocationEvent, *, local: bool = False) -> None:
        """Make ``event`` effective; ``local``: this site made it (listeners hear it)."""
        self._insert(event)
        self.generation += 1
        if event.origin is not None and event.seq is not None:
            self.arrivals.append((event.origin, event.seq, self.clock()))
        if local:
            for listener in self.listeners:
                listener(event)

    def _insert(self, event: RevocationEvent) -> None:
        self._events.append(event)
        effective = event
        if event.origin not in (None, self.self_name):
            # Another site's event revokes that site's tokens only (core.revocation).
            effective = dataclasses.replace(event, issuer=event.origin)
        shape = _shape(effective)
        getter = operator.itemgetter(*shape)
        key = getter(tuple(getattr(effective, f) for f in MATCH_FIELDS))
        table = self._index.get(shape)
        if table is None:
            table = self._index[shape] = {}
            self._lookups.append((getter, table))
        if table.get(key, -1.0) < event.issued_before:
            table[key] = event.issued_before
        if event.origin is not None and event.seq is not None:
            self._number(event.origin, event.seq, event)
            self._floor[event.origin] = max(self._floor.get(event.origin, 1), event.floor)
            self._advance(event.origin)

    def _number(self, origin: str, seq: int, event: RevocationEvent) -> None:
        self._numbered.setdefault(origin, {})[seq] = event

    def _advance(self, origin: str) -> None:
        held = self._numbered.get(origin, {})
        upto = max(self._upto.get(origin, 0), self._floor.get(origin, 1) - 1)
        while upto + 1 in held:
            upto += 1
        self._upto[origin] = upto

    def holds(self, origin: str, seq: int) -> bool:
        return seq in self._numbered.get(origin, {}) or seq <= self._upto.get(origin, 0)

    # ---- checking -----------------------------------------------------------------------

    def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        if not self._lookups:
            return False
        values = token_fields(claims)
        issued = claims.get("iat", 0.0)
        for getter, table in self._lookups:
            latest = table.get(getter(values))
            if latest is not None and issued <= latest:
                return True
        return False

    # ---- catching up --------------------------------------------------------------------

    def digest(self) -> dict[str, int]:
        """Per origin: the number up to which this site holds its events without a gap."""
        return dict(self._upto)

    def last_seq(self, origin: str) -> int:
        return max(max(self._numbered.get(origin, {}), default=0), self._upto.get(origin, 0))

    def floor_of(self, origin: str) -> int:
        """The lowest number of ``origin``'s events still held (the next one if none)."""
        held = self._numbered.get(origin)
        return min(held) if held else self.last_seq(origin) + 1

    def missing_for(self, digest: Mapping[str, int], *, limit: int) -> list[RevocationEvent]:
        """The events a peer with ``digest`` lacks, oldest first, at most ``limit``."""
        out: list[RevocationEvent] = []
        for origin, held in self._numbered.items():
            have = digest.get(origin, 0)
            for seq in sorted(s for s in held if s > have):
                out.append(held[seq])
                if len(out) >= limit:
                    return out
        return out

    def synced_age(self) -> float | None:
        """Seconds since this site last caught up with a peer (None: never)."""
        return None if self._synced_at is None else self.monotonic() - self._synced_at

    def note_synced(self) -> None:
        """This site just caught up with a peer (it holds all the peer held)."""
        self._synced_at = self.monotonic()

    def check_fresh(self, issuer: str) -> None:
        """Unauthorized when this site has not caught up with the fleet for too long to
        trust that ``issuer``'s token is not revoked (a site that was cut off)."""
        if self.max_staleness <= 0:
            return
        synced = self._synced_at
        if synced is None:
            raise Unauthorized(
                f"This site has not yet caught up with the fleet's revocations; tokens of "
                f"{issuer} are accepted once it has (log in at this site meanwhile)."
            )
        age = self.monotonic() - synced
        if age > self.max_staleness:
            raise Unauthorized(
                f"This site has been cut off from the fleet for {age:.0f} s and cannot check "
                f"whether this token of {issuer} was revoked; it is accepted again once this "
                "site has caught up (log in at this site meanwhile)."
            )

    # ---- forgetting ---------------------------------------------------------------------

    def prune(self, before: float) -> int:
        """Forget events no unexpired token can match (issued_before < ``before``); the
        watermarks stay. How many were forgotten."""
        kept = [e for e in self._events if e.issued_before >= before]
        dropped = len(self._events) - len(kept)
        if not dropped:
            return 0
        upto, floor = dict(self._upto), dict(self._floor)
        self._index, self._lookups, self._events, self._numbered = {}, [], [], {}
        for event in kept:
            self._insert(event)
        for origin, value in upto.items():
            self._upto[origin] = max(value, self._upto.get(origin, 0))
            self._floor[origin] = max(floor.get(origin, 1), self._floor.get(origin, 1))
        self.generation += 1
        return dropped


class Revoker(Protocol):
    """What the identity service offers other rooms: make a revocation effective here
    (stored first, so it survives a restart) and spread it to the fleet."""

    async def revoke(self, event: RevocationEvent) -> None: ...

    async def revoke_user(self, user_id: str, *, project_id: str | None = None) -> None:
        """Every token of the user (on ``project_id`` only, when given) issued until now."""
        ...
