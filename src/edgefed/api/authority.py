"""What a token from another fleet site is worth here: the port the identity service fills.

A token proves who its user is (home site, user, domain, how and when they logged in),
never what they may do at this site (docs/fleet-trust.md). ``Authority.foreign_grant``
answers from what this site holds: role assignments made here or received from a sync
source it registered with, and the mapping rules its operator set. Role claims in the
token are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class ForeignGrant:
    """The user of a foreign token, as this site knows them."""

    # The user's id here: the token's, unless this site holds a user of that id that
    # the issuer does not speak for; then an id of its own, so that nothing the local
    # user owns (keypairs, credentials, servers) is reachable with the foreign token.
    user_id: str
    # Effective role names here (implied roles expanded), on the token's scope.
    roles: frozenset[str]


class Authority(Protocol):
    async def foreign_grant(self, claims: Mapping[str, Any]) -> ForeignGrant:
        """Unauthorized when the token may not be used here at all (a user disabled
        here, a user the issuer does not own that this site cannot tell apart)."""
        ...

    def generation(self) -> int:
        """Changes whenever what ``foreign_grant`` answers may have changed."""
        ...
