"""Who may sign what in the fleet registry, and the rule that merges entries.

The entries themselves (``core.fleet``) are data; this module says when one may replace
another (docs/fleet-trust.md):

- **the site signs its own entry**; a forged entry for another site fails that check;
- **an authority enrolls it** (the founding site, or a site an authority enrolled as
  one); a member that is not an authority cannot add sites;
- **a key rotation is signed by the old key**, so the pin moves only by the hand of
  whoever held the pinned key;
- **a revocation is signed by an authority** and is final for that key: the entry stays
  revoked whatever version arrives later; only a fresh enrollment (newer than the
  revocation, with a new key) brings the name back.

Order of entries for one name (``state_of``, what gossip digests carry): the enrollment
time first (a re-enrollment replaces a revoked past), then revoked over active (a
revocation is never lost to a concurrent update), then the version.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from edgefed.core.ed25519 import Ed25519PrivateKey
from edgefed.core.errors import ValidationFailed
from edgefed.core.fleet import (
    Enrollment,
    MissingAuthority,
    Revocation,
    RevokedAuthority,
    Rotation,
    SiteEntry,
    verify_signature,
)
from edgefed.core.tokens import b64url, public_key_b64

# ---- signing ----------------------------------------------------------------------------


def signed(entry: SiteEntry, key: Ed25519PrivateKey) -> SiteEntry:
    """``entry`` with its own signature (``key`` must be the entry's key)."""
    if public_key_b64(key.public_key()) != entry.public_key:
        raise ValueError("an entry is signed with its own key")
    return dataclasses.replace(entry, signature=b64url(key.sign(entry.body_message())))


def enrollment_for(
    name: str, key: str, *, by: str, authority: bool, at: float, signer: Ed25519PrivateKey
) -> Enrollment:
    unsigned = Enrollment(by=by, key=key, authority=authority, at=at)
    return dataclasses.replace(unsigned, signature=b64url(signer.sign(unsigned.message(name))))


def revocation_for(
    entry: SiteEntry, *, by: str, at: float, signer: Ed25519PrivateKey
) -> Revocation:
    unsigned = Revocation(by=by, at=at)
    message = unsigned.message(entry.name, entry.public_key)
    return dataclasses.replace(unsigned, signature=b64url(signer.sign(message)))


def rotation_for(name: str, *, old: Ed25519PrivateKey, new_key: str, at: float) -> Rotation:
    unsigned = Rotation(old_key=public_key_b64(old.public_key()), new_key=new_key, at=at)
    return dataclasses.replace(unsigned, signature=b64url(old.sign(unsigned.message(name))))


# ---- merging ----------------------------------------------------------------------------

EntryState = tuple[float, bool, int]  # enrollment time, revoked, version


def state_of(entry: SiteEntry) -> EntryState:
    epoch = entry.enrollment.at if entry.enrollment is not None else 0.0
    return epoch, not entry.active, entry.version


def keys_of(entry: SiteEntry) -> set[str]:
    """Every key the entry's site has held: enrolled, rotated away from, current."""
    keys = {entry.public_key, *(r.old_key for r in entry.rotations)}
    if entry.enrollment is not None:
        keys.add(entry.enrollment.key)
    return keys


def supersedes(state: EntryState, over: EntryState | None) -> bool:
    """Whether an entry at ``state`` is newer than one at ``over`` (signatures aside)."""
    return over is None or state > over


def check_incoming(
    incoming: SiteEntry,
    *,
    local: SiteEntry | None,
    known: Mapping[str, SiteEntry],
    trust_roots: bool = False,
) -> bool:
    """Whether ``incoming`` replaces ``local``: True if it is valid and newer, False if it
    is not newer (nothing to do); ValidationFailed if it is forged or not allowed,
    MissingAuthority if it names an authority ``known`` lacks, and RevokedAuthority if it
    names one that is revoked now. ``trust_roots`` accepts a
    self-enrolled founder (only while joining, from the issuer the operator pinned)."""
    name = incoming.name
    if local is not None and not supersedes(state_of(incoming), state_of(local)):
        return False
    if local is not None and local.revocation is not None:
        newer = incoming.enrollment is not None and incoming.enrollment.at > max(
            local.enrollment.at if local.enrollment else 0.0, local.revocation.at
        )
        if not newer:
            if incoming.revocation is not None:
                return False  # revoked either way: nothing to add
            raise ValidationFailed(
                f"site {name} was revoked; only a new enrollment by an authority brings it back",
                field="site",
            )
        if incoming.public_key in keys_of(local) or (
            incoming.enrollment is not None and incoming.enrollment.key in keys_of(local)
        ):
            raise ValidationFailed(
                f"site {name} was revoked with this key; a new enrollment needs a new key",
                field="public_key",
            )
    verify_signature(
        incoming.public_key, incoming.signature, incoming.body_message(), f"site {name}"
    )
    if local is not None and incoming.public_key != local.public_key and local.active:
        _check_rotation_from(incoming, local.public_key)
        if incoming.enrollment != local.enrollment:
            raise ValidationFailed(f"site {name}: a key rotation keeps the enrollment")
    elif local is None or incoming.enrollment != local.enrollment:
        _check_enrollment(incoming, known, trust_roots=trust_roots)
    if incoming.revocation is not None:
        _check_revocation(incoming, known)
    return True


def _check_enrollment(
    entry: SiteEntry, known: Mapping[str, SiteEntry], *, trust_roots: bool
) -> None:
    enrollment = entry.enrollment
    if enrollment is None:
        raise ValidationFailed(f"site {entry.name} carries no enrollment", field="enrollment")
    if enrollment.by == entry.name:
        if not trust_roots:
            raise ValidationFailed(
                f"site {entry.name} enrolled itself; only the fleet's founder may, and only "
                "when a site joins through it",
                field="enrollment",
            )
        signer_key = enrollment.key
    else:
        authority = known.get(enrollment.by)
        if authority is None:
            raise MissingAuthority(
                f"site {entry.name} was enrolled by {enrollment.by}, unknown here",
                field="enrollment",
            )
        if not authority.authority or not authority.active:
            raise (RevokedAuthority if authority.authority else ValidationFailed)(
                f"site {entry.name} was enrolled by {enrollment.by}, which is not an active "
                "fleet authority",
                field="enrollment",
            )
        signer_key = authority.public_key
    verify_signature(signer_key, enrollment.signature, enrollment.message(entry.name),
            f"the enrollment of {entry.name}")  # fmt: skip
    _check_rotation_chain(entry, enrollment.key, entry.rotations)


def _check_rotation_from(entry: SiteEntry, pinned: str) -> None:
    for i, rotation in enumerate(entry.rotations):
        if rotation.old_key == pinned:
            _check_rotation_chain(entry, pinned, entry.rotations[i:])
            return
    raise ValidationFailed(
        f"site {entry.name} arrived with another key and no rotation signed by its pinned key",
        field="public_key",
    )


def _check_rotation_chain(entry: SiteEntry, start: str, rotations: tuple[Rotation, ...]) -> None:
    current = start
    for rotation in rotations:
        if rotation.old_key != current:
            continue  # rotations before the pinned key (checked when they were made)
        verify_signature(current, rotation.signature, rotation.message(entry.name),
                f"a key rotation of {entry.name}")  # fmt: skip
        current = rotation.new_key
    if current != entry.public_key:
        raise ValidationFailed(
            f"site {entry.name}: its key is not reached from its enrolled key by signed rotations",
            field="public_key",
        )


def _check_revocation(entry: SiteEntry, known: Mapping[str, SiteEntry]) -> None:
    revocation = entry.revocation
    assert revocation is not None
    authority = known.get(revocation.by)
    if authority is None:
        raise MissingAuthority(
            f"site {entry.name} was revoked by {revocation.by}, unknown here", field="revocation"
        )
    if authority.authority and not authority.active and revocation.by != entry.name:
        raise RevokedAuthority(
            f"site {entry.name} was revoked by {revocation.by}, which is revoked itself",
            field="revocation",
        )
    if not authority.authority or not authority.active or revocation.by == entry.name:
        raise ValidationFailed(
            f"site {entry.name} was revoked by {revocation.by}, which is not another active "
            "fleet authority",
            field="revocation",
        )
    verify_signature(authority.public_key, revocation.signature,
            revocation.message(entry.name, entry.public_key),
            f"the revocation of {entry.name}")  # fmt: skip
