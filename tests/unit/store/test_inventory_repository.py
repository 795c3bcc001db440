"""The inventory store's contracts: a host is found by id or hostname, a management
address or hostname is never held twice, a token is used once, and one host is never
taken by two enrollments."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest

from edgefed.core.errors import Conflict
from edgefed.store.engine import Store
from edgefed.store.inventory import (
    EnrollmentTokens,
    Hosts,
    InventoryRepository,
    MgmtIpTaken,
    NewEnrollmentToken,
    NewHost,
)

NOW = dt.datetime(2030, 5, 1, 12, tzinfo=dt.UTC)


def host(name: str, ip: str | None, **extra: object) -> NewHost:
    return NewHost(id=f"id-{name}", hostname=name, personality="worker", mgmt_ip=ip, **extra)  # type: ignore[arg-type]


async def test_hosts_are_found_by_id_or_hostname_and_listed_by_name(store: Store) -> None:
    hosts = Hosts(store, now=lambda: NOW)
    made = await hosts.create(new=host("worker-2", "192.168.204.3", labels={"zone": "a"}))
    await hosts.create(new=host("worker-1", "192.168.204.2"))
    assert made.created_at == NOW and made.labels == {"zone": "a"} and made.locked
    assert (await hosts.get(id="id-worker-2")) == made
    assert (await hosts.get(id="worker-2")) == made
    assert (await hosts.get(id="Worker-2")) == made
    assert await hosts.get(id="worker-3") is None
    assert await hosts.by_hostname("id-worker-2") is None
    assert [h.hostname for h in await InventoryRepository(store).list_hosts()] == [
        "worker-1",
        "worker-2",
    ]
    assert await hosts.used_mgmt_ips() == {"192.168.204.2", "192.168.204.3"}


async def test_an_address_or_a_hostname_is_never_held_twice(store: Store) -> None:
    hosts = Hosts(store)
    await hosts.create(new=host("a", "10.0.0.2"))
    with pytest.raises(MgmtIpTaken):
        await hosts.create(new=host("b", "10.0.0.2"))
    with pytest.raises(Conflict, match="hostname already exists"):
        await hosts.create(new=NewHost(id="other", hostname="a", personality=None, mgmt_ip=None))
    b = await hosts.create(new=host("b", "10.0.0.3"))
    with pytest.raises(MgmtIpTaken):
        await hosts.update(id=b.id, changes={"mgmt_ip": "10.0.0.2"})
    # Racing adds of one address: exactly one wins.
    results = await asyncio.gather(
        *(hosts.create(new=host(f"r{i}", "10.0.0.9")) for i in range(5)), return_exceptions=True
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 1
    assert all(isinstance(r, MgmtIpTaken) for r in results if isinstance(r, BaseException))


async def test_a_token_is_used_once(store: Store) -> None:
    tokens = EnrollmentTokens(store, now=lambda: NOW)
    token = await tokens.create(
        new=NewEnrollmentToken(
            id="t1", token_hash="h1", hostname=None, personality=None, expires_at=9.0
        )
    )
    assert (await tokens.by_hash("h1")) == token and token.used_at is None
    won = await asyncio.gather(
        *(tokens.consume("t1", host_id=f"h{i}", used_at=5.0) for i in range(4))
    )
    assert won.count(True) == 1
    used = await tokens.by_hash("h1")
    assert used is not None and used.used_at == 5.0 and used.used_by_host_id is not None
    assert await tokens.delete(id="t1") and not await tokens.delete(id="t1")


async def test_one_host_is_never_claimed_by_two_enrollments(store: Store) -> None:
    hosts, tokens = Hosts(store), EnrollmentTokens(store)
    target = await hosts.create(new=host("edge-1", None))
    for i in (1, 2):
        await tokens.create(
            new=NewEnrollmentToken(
                id=f"t{i}", token_hash=f"h{i}", hostname="edge-1", personality=None, expires_at=9.0
            )
        )
    claims = await asyncio.gather(
        *(
            hosts.claim_agent(
                token_id=f"t{i}", host_id=target.id, credential_hash=f"c{i}", used_at=1.0,
                changes={"availability": "available"},
            )
            for i in (1, 2)
        )
    )  # fmt: skip
    won = [c for c in claims if c is not None]
    assert len(won) == 1 and won[0].availability == "available"
    # The loser's token is not spent: nothing changed for it.
    loser = "t2" if won[0].credential_hash == "c1" else "t1"
    assert (await tokens.get(id=loser)).used_at is None  # type: ignore[union-attr]
    # A used token claims nothing, even a host without an agent.
    await hosts.update(id=target.id, changes={"credential_hash": None})
    winner = "t1" if loser == "t2" else "t2"
    assert await hosts.claim_agent(
        token_id=winner, host_id=target.id, credential_hash="c9", used_at=2.0, changes={}
    ) is None  # fmt: skip


async def test_silent_hosts_are_marked_down_once(store: Store) -> None:
    hosts = Hosts(store, now=lambda: NOW)
    await hosts.create(
        new=host("quiet", "10.0.0.2", availability="available", last_heartbeat_at=10.0)
    )
    await hosts.create(
        new=host("chatty", "10.0.0.3", availability="available", last_heartbeat_at=50.0)
    )
    await hosts.create(new=host("never", "10.0.0.4"))
    down = await hosts.mark_silent_down(heard_before=30.0)
    assert [h.hostname for h in down] == ["quiet"]
    assert (await hosts.get(id="quiet")).availability == "down"  # type: ignore[union-attr]
    assert await hosts.mark_silent_down(heard_before=30.0) == []
