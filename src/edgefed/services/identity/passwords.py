"""Password and secret hashing: argon2id, always off the event loop.

The hash is a self-describing PHC string (``$argon2id$v=19$m=…,t=…,p=…$salt$hash``), so
a hash copied verbatim to another site verifies there. The cost follows OWASP's
minimum for argon2id (19 MiB, 2 passes): hashing is deliberately slow, so it runs in a
worker thread and never stalls the other requests; ``LoginThrottle`` bounds how many
run at once and locks a user out after repeated failures (Keystone's lockout). The C
heap keeps each check's 19 MiB for the next one, and hands it back to the system once
no check has run for a second (core/heap.py: idle at 80 MiB, not 99).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from edgefed.api.context import SiteContext
from edgefed.core.errors import EdgefedError, Unauthorized
from edgefed.core.heap import HeapRelease
from edgefed.core.settings import SiteSettings

_HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# The checks' memory goes back to the system a second after the last one.
_RELEASE = HeapRelease(after=1.0)


async def hash_secret(secret: str) -> str:
    try:
        return await asyncio.to_thread(_HASHER.hash, secret)
    finally:
        _RELEASE.soon()


def _verify(phc: str, secret: str) -> bool:
    try:
        return _HASHER.verify(phc, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_secret(phc: str | None, secret: str) -> bool:
    if not phc:
        return False
    try:
        return await asyncio.to_thread(_verify, phc, secret)
    finally:
        _RELEASE.soon()


def new_app_credential_secret() -> str:
    """Keystone's form: 64 random bytes, urlsafe base64 without padding."""
    return secrets.token_urlsafe(64)


# -- failed logins: Keystone's lockout, and a bound on the CPU that guessing can burn --


class TooManyPasswordChecks(EdgefedError):
    """Every password check slot is busy and the queue is full: try again shortly."""

    status = 429
    title = "Too Many Requests"


class LoginThrottle:
    """Failed password logins per user (Keystone's ``security_compliance`` lockout) and
    the number of password checks running or waiting at once.

    - ``lockout_failure_attempts`` failed logins in a row lock the user for
      ``lockout_duration`` seconds after the last one: 401 *The account is locked for user:
      <id>.*, answered without checking the password (so a locked account costs no
      hashing); a successful login resets the count. 0 turns the lockout off (Keystone's
      default: a lockout also lets anyone lock a user out).
    - At most ``password_check_concurrency`` argon2 verifications run at a time (each
      holds its memory cost and keeps a core busy for its passes), and at most
      ``password_check_queue`` more wait; past that a login is refused with 429 at once.
      However many guesses arrive, they burn that many cores at most and the rest of the
      site keeps answering.

    Counts live in this site's memory: they restart with the process and each site
    counts the logins it serves (docs/identity.md).
    """

    def __init__(self, settings: SiteSettings, clock: Callable[[], float]):
        self.max_failures = settings.lockout_failure_attempts
        self.duration = settings.lockout_duration
        self.clock = clock
        self.queue_limit = settings.password_check_concurrency + settings.password_check_queue
        self.slots = asyncio.Semaphore(settings.password_check_concurrency)
        self.waiting = 0
        # user id -> (consecutive failures, time of the last one)
        self.failures: dict[str, tuple[int, float]] = {}

    def check_not_locked(self, user_id: str) -> None:
        if not self.max_failures:
            return
        count, last = self.failures.get(user_id, (0, 0.0))
        if count < self.max_failures:
            return
        if self.clock() < last + self.duration:
            raise Unauthorized(f"The account is locked for user: {user_id}.")
        del self.failures[user_id]  # the lock has expired: a fresh start

    def failed(self, user_id: str) -> None:
        if self.max_failures:
            count, _ = self.failures.get(user_id, (0, 0.0))
            self.failures[user_id] = (count + 1, self.clock())

    def succeeded(self, user_id: str) -> None:
        self.failures.pop(user_id, None)

    async def verify(self, phc: str | None, secret: str) -> bool:
        """``verify_secret``, within the bound on password checks."""
        if self.waiting >= self.queue_limit:
            raise TooManyPasswordChecks(
                "Too many password checks are in progress on this site; retry shortly.",
                headers={"Retry-After": "1"},
            )
        self.waiting += 1
        try:
            async with self.slots:
                return await verify_secret(phc, secret)
        finally:
            self.waiting -= 1


def login_throttle(ctx: SiteContext) -> LoginThrottle:
    """This site's throttle (one per site: in-process test fleets hold several sites)."""
    return ctx.slots.setdefault(LoginThrottle, lambda: LoginThrottle(ctx.settings, ctx.clock))
