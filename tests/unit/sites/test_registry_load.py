"""What a site publishes of itself at start: its entry, once per change; its key,
only with a rotation signed by the pinned one; nothing once it is revoked."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sites_kit import Member, registry_of, revoked_by

from edgefed.core.fleet_rules import check_incoming
from edgefed.services.sites.enrollment import EnrollmentToken
from edgefed.services.sites.registry import ROTATION_FILE, pending_rotation, rotate_key
from edgefed.testkit.asgi_fleet import FleetTransport
from edgefed.testkit.inprocess import run_site, site_settings
from edgefed.testkit.inprocess_fleet import admin, ctx_of


async def test_a_restart_with_the_same_settings_publishes_nothing_new(tmp_path: Path) -> None:
    settings = site_settings(tmp_path / "berlin", labels={"tier": "core"})
    async with run_site(settings) as site:
        first = registry_of(site).self_entry
        assert first.version == 1 and first.authority  # a founder enrolls itself
    async with run_site(settings) as site:
        assert registry_of(site).self_entry == first


async def test_a_changed_description_is_published_as_the_next_version(tmp_path: Path) -> None:
    async with run_site(site_settings(tmp_path / "berlin", labels={"tier": "core"})) as site:
        first = registry_of(site).self_entry
    changed = site_settings(tmp_path / "berlin", labels={"tier": "edge"})
    async with run_site(changed) as site:
        entry = registry_of(site).self_entry
    assert entry.version == first.version + 1
    assert entry.labels == {"tier": "edge"}
    assert entry.enrollment == first.enrollment  # the same membership
    # Signed again by the site: a peer that holds the first takes the second.
    assert check_incoming(entry, local=first, known={"Berlin": first})


async def test_keys_that_are_not_the_pinned_one_stop_the_start(tmp_path: Path) -> None:
    async with run_site(site_settings(tmp_path / "berlin")):
        pass
    async with run_site(site_settings(tmp_path / "other")):
        pass
    # The operator copied another site's keys into Berlin's data directory.
    shutil.copy(tmp_path / "other" / "keys" / "signing.pem", tmp_path / "berlin" / "keys")
    with pytest.raises(RuntimeError, match="pins another key for Berlin"):
        async with run_site(site_settings(tmp_path / "berlin")):
            pass


async def test_a_revoked_site_stays_revoked_across_restarts(tmp_path: Path) -> None:
    settings = site_settings(tmp_path / "denver", name="Denver", labels={"v": "1"})
    async with run_site(site_settings(tmp_path / "berlin")) as berlin:
        async with run_site(settings) as denver:
            # Denver as Berlin enrolled it, then revoked by Berlin: stored at Denver.
            registry = registry_of(denver)
            member = Member("Denver", key=ctx_of(denver).signer.private_key)
            entry = member.entry(
                by="Berlin", by_key=ctx_of(berlin).signer.private_key, labels={"v": "1"}
            )
            revoked = revoked_by(berlin, entry)
            await registry.repo.put([registry_of(berlin).self_entry, revoked])
    changed = site_settings(tmp_path / "denver", name="Denver", labels={"v": "2"})
    async with run_site(changed) as denver:
        # Nothing republished under a revoked name, whatever changed.
        assert registry_of(denver).self_entry == revoked


async def test_a_site_given_a_join_token_founds_nothing_while_it_waits(tmp_path: Path) -> None:
    token = EnrollmentToken(
        issuer="Berlin",
        issuer_url="http://berlin.test",
        issuer_key=Member("Berlin").public_key,
        token_id="t1",
        secret="s",  # noqa: S106 - a test token
        site_name="Lyon",
    )
    settings = site_settings(
        tmp_path / "lyon", name="Lyon", join_token=token.encode(), gossip_interval_seconds=3600.0
    )
    # Berlin is not there: the first attempt fails, the site starts all the same.
    async with run_site(settings, transport=FleetTransport()) as lyon:
        registry = registry_of(lyon)
        assert registry.self_entry.enrollment is None
        assert registry.authorities() == []
        r = await lyon.client.post(
            "/edge/v1/fleet/enrollments",
            json={"enrollment": {"name": "Nice"}},
            headers=admin(lyon),
        )
        assert r.status_code == 403
        assert "Lyon is not a fleet authority" in r.json()["error"]["message"]
        assert "none known" in r.json()["error"]["message"]


def test_rotating_needs_a_site(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="holds no site"):
        rotate_key(tmp_path, now=1.0)


async def test_a_published_rotation_makes_way_for_the_next(tmp_path: Path) -> None:
    settings = site_settings(tmp_path / "berlin")
    async with run_site(settings) as site:
        enrolled = registry_of(site).self_entry
    first = rotate_key(tmp_path / "berlin", now=2e9)
    with pytest.raises(RuntimeError, match="already pending"):
        rotate_key(tmp_path / "berlin", now=2e9 + 1)
    assert pending_rotation(tmp_path / "berlin") == first
    async with run_site(settings) as site:
        published = registry_of(site).self_entry
        assert published.public_key == first.new_key
        assert published.rotations == (first,)
    # Published: the site can rotate again (the rotation is not pending any more).
    assert not (tmp_path / "berlin" / "keys" / ROTATION_FILE).exists()
    second = rotate_key(tmp_path / "berlin", now=2e9 + 10)
    assert second.old_key == first.new_key
    async with run_site(settings) as site:
        entry = registry_of(site).self_entry
    assert entry.public_key == second.new_key
    assert entry.rotations == (first, second)
    # A peer that pinned the enrolled key follows both rotations; one that never saw
    # Berlin checks the chain from the enrolled key.
    assert check_incoming(entry, local=enrolled, known={})
    assert check_incoming(entry, local=None, known={}, trust_roots=True)


async def test_a_rotation_keeps_the_old_key_aside_privately(tmp_path: Path) -> None:
    async with run_site(site_settings(tmp_path / "berlin")) as site:
        pinned = registry_of(site).self_entry.public_key
    keys = tmp_path / "berlin" / "keys"
    before = (keys / "signing.pem").read_bytes()
    rotation = rotate_key(tmp_path / "berlin", now=2e9)
    assert rotation.old_key == pinned and rotation.new_key != pinned
    assert (keys / "signing.pem.old").read_bytes() == before
    assert (keys / "signing.pem").read_bytes() != before
    for name in ("signing.pem", "signing.pem.old", ROTATION_FILE):
        assert (keys / name).stat().st_mode & 0o777 == 0o600
