"""Password and secret hashing: argon2id, always off the event loop.

The hash is a self-describing PHC string (``$argon2id$v=19$m=…,t=…,p=…$salt$hash``), so
a hash copied verbatim to another site verifies there. The cost follows OWASP's
minimum for argon2id (19 MiB, 2 passes): hashing is deliberately slow, so it runs in a
worker thread and never stalls the other requests.
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)


async def hash_secret(secret: str) -> str:
    return await asyncio.to_thread(_HASHER.hash, secret)


def _verify(phc: str, secret: str) -> bool:
    try:
        return _HASHER.verify(phc, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_secret(phc: str | None, secret: str) -> bool:
    if not phc:
        return False
    return await asyncio.to_thread(_verify, phc, secret)


def new_app_credential_secret() -> str:
    """Keystone's form: 64 random bytes, urlsafe base64 without padding."""
    return secrets.token_urlsafe(64)
