"""The identity *generation* of a store: a counter bumped after every identity write.

The caches built from identity data — a user's grant per scope, the role graph, names,
the token catalog, the foreign-token authority's answers — compare it to know they are
stale, whichever path wrote: the repositories of this package (their ``on_write``),
the sync receiver, the mapping rules. It lives in memory, per ``Store``: a restart
starts it afresh, with every cache empty.
"""

from __future__ import annotations

import weakref

from edgefed.store.engine import Store

_generations: weakref.WeakKeyDictionary[Store, int] = weakref.WeakKeyDictionary()


def identity_generation(store: Store) -> int:
    """Bumped after every identity write on ``store``."""
    return _generations.get(store, 0)


def mark_identity_changed(store: Store) -> None:
    """Call after writing identity rows (the repositories and the sync receiver do)."""
    _generations[store] = _generations.get(store, 0) + 1
