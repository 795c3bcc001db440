"""Failed logins: Keystone's lockout (per user, for a duration, reset by a success) and a
bound on the password checks running at once (argon2 is expensive)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from identity_helpers import create, login

from edgefed.core.errors import ValidationFailed
from edgefed.services.identity.passwords import TooManyPasswordChecks, login_throttle
from edgefed.testkit.inprocess import InProcessSite, run_site, site_settings


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def locking_site(tmp_path: Path, clock: Clock) -> AsyncIterator[InProcessSite]:
    settings = site_settings(tmp_path / "s", lockout_failure_attempts=3, lockout_duration=60.0)
    async with run_site(settings, clock=clock) as s:
        yield s


async def test_a_user_is_locked_after_repeated_failures_until_the_duration_passes(
    locking_site: InProcessSite, clock: Clock
) -> None:
    c = locking_site.client
    admin = {"X-Auth-Token": await locking_site.token()}
    user = await create(c, admin, "user", name="vic", password="right")
    for _ in range(3):
        r = await login(c, "vic", "wrong")
        assert r.status_code == 401
        assert r.json()["error"]["message"] == "The request you have made requires authentication."
    # Locked: even the right password is refused, with Keystone's message.
    r = await login(c, "vic", "right")
    assert r.status_code == 401
    assert r.json()["error"]["message"] == f"The account is locked for user: {user['id']}."
    clock.now += 59
    assert (await login(c, "vic", "right")).status_code == 401
    # After the duration the account opens again.
    clock.now += 2
    assert (await login(c, "vic", "right")).status_code == 201
    # Other users were never locked.
    assert (await login(c, "admin", "admin-secret")).status_code == 201


async def test_a_success_resets_the_count(locking_site: InProcessSite) -> None:
    c = locking_site.client
    admin = {"X-Auth-Token": await locking_site.token()}
    await create(c, admin, "user", name="wes", password="right")
    for _ in range(2):
        assert (await login(c, "wes", "wrong")).status_code == 401
    assert (await login(c, "wes", "right")).status_code == 201
    for _ in range(2):
        assert (await login(c, "wes", "wrong")).status_code == 401
    assert (await login(c, "wes", "right")).status_code == 201


async def test_no_lockout_by_default(site: InProcessSite) -> None:
    """Keystone's default: a lockout also lets anyone lock a user out, so it is opt-in."""
    for _ in range(5):
        assert (await login(site.client, "admin", "wrong")).status_code == 401
    assert (await login(site.client, "admin", "admin-secret")).status_code == 201


async def test_password_checks_beyond_the_bound_are_refused_at_once(site: InProcessSite) -> None:
    throttle = login_throttle(site.app.state.ctx)
    # The check slots and the queue are full (guessers got there first): a 429, not a
    # hash more, and the rest of the site answers.
    throttle.waiting = throttle.queue_limit
    r = await login(site.client, "admin", "admin-secret")
    assert r.status_code == 429, r.text
    assert "Too many password checks" in r.json()["error"]["message"]
    assert r.headers["retry-after"] == "1"
    assert (await site.client.get("/identity/v3")).status_code == 200
    throttle.waiting = 0
    assert (await login(site.client, "admin", "admin-secret")).status_code == 201


async def test_the_bound_counts_checks_running_and_waiting(tmp_path: Path) -> None:
    settings = site_settings(tmp_path / "s", password_check_concurrency=2, password_check_queue=0)
    async with run_site(settings) as s:
        throttle = login_throttle(s.app.state.ctx)
        async with throttle.slots, throttle.slots:  # both slots are taken
            waiting = asyncio.create_task(throttle.verify(None, "x"))
            await asyncio.sleep(0)  # let it wait for a slot
            waiting2 = asyncio.create_task(throttle.verify(None, "x"))
            await asyncio.sleep(0)
            assert throttle.waiting == 2  # the bound: 2 running or waiting
            with pytest.raises(TooManyPasswordChecks):
                await throttle.verify(None, "y")
        assert await waiting is False and await waiting2 is False
        assert throttle.waiting == 0


def test_lockout_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed, match="lockout_duration"):
        site_settings(tmp_path, lockout_duration=0)
    with pytest.raises(ValidationFailed, match="password_check_concurrency"):
        site_settings(tmp_path, password_check_concurrency=0)
