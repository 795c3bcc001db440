"""The fleet registry of this site: durable copy, in-memory view, joins and merges.

Writes go to the store first, then to the in-memory view, so an entry a site has
acknowledged survives a crash. Merging follows ``core.fleet.should_replace``.
"""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
import orjson

from edgefed.api.context import SiteContext
from edgefed.api.fleetview import FleetView
from edgefed.api.sitecalls import signed_headers
from edgefed.core.errors import BadRequest, Conflict, NotFound, Unauthorized, Unavailable
from edgefed.core.fleet import SiteEntry, SiteStatus, should_replace
from edgefed.core.tokens import public_key_b64
from edgefed.services.sites.enrollment import EnrollmentToken
from edgefed.store.fleet import FleetRepository

log = logging.getLogger("edgefed.fleet")

SERVICE_KEY = "sites"


class Registry:
    def __init__(self, ctx: SiteContext, *, capabilities: tuple[str, ...]):
        self.ctx = ctx
        self.repo = FleetRepository(ctx.store)
        self.view = FleetView(self_name=ctx.name, keyring=ctx.keyring, peers=ctx.peers)
        self.capabilities = capabilities
        self._lock = asyncio.Lock()

    @property
    def public_key(self) -> str:
        return public_key_b64(self.ctx.signer.public_key)

    async def load(self) -> None:
        """Load the durable registry and (re)publish this site's own entry."""
        entries = await self.repo.all()
        self.view.apply(entries)
        current = self.view.entries.get(self.ctx.name)
        mine = self._describe_self(version=1)
        if current is not None:
            if current.public_key != mine.public_key:
                raise RuntimeError(
                    f"the registry pins another key for {self.ctx.name}: the data directory's "
                    "keys/ do not belong to this registry"
                )
            same = (
                current.endpoint == mine.endpoint
                and dict(current.labels) == dict(mine.labels)
                and current.location == mine.location
                and current.capabilities == mine.capabilities
                and current.active
            )
            if same:
                return
            mine = self._describe_self(version=current.version + 1)
        await self.repo.put([mine])
        self.view.apply([mine])

    def _describe_self(self, *, version: int) -> SiteEntry:
        s = self.ctx.settings
        return SiteEntry(
            name=s.name,
            endpoint=self.ctx.public_url,
            public_key=self.public_key,
            version=version,
            location=s.location,
            labels=dict(s.labels),
            capabilities=self.capabilities,
            updated_at=self.ctx.clock(),
        )

    @property
    def self_entry(self) -> SiteEntry:
        return self.view.entries[self.ctx.name]

    def entries(self) -> list[SiteEntry]:
        return sorted(self.view.entries.values(), key=lambda e: e.name)

    async def merge(self, incoming: list[SiteEntry]) -> list[SiteEntry]:
        """Store and apply the incoming entries that win; the ones that changed."""
        async with self._lock:
            winners: list[SiteEntry] = []
            for entry in incoming:
                if entry.name == self.ctx.name:
                    # Nobody else speaks for this site, except to revoke it.
                    local = self.view.entries.get(entry.name)
                    if entry.status is SiteStatus.REVOKED and should_replace(local, entry):
                        log.warning("this site (%s) was revoked from the fleet", entry.name)
                        winners.append(entry)
                    continue
                if should_replace(self.view.entries.get(entry.name), entry):
                    winners.append(entry)
            if winners:
                await self.repo.put(winners)
                self.view.apply(winners)
            return winners

    async def revoke(self, name: str) -> SiteEntry:
        entry = self.view.entries.get(name)
        if entry is None:
            raise NotFound(f"site {name} is not in the fleet registry")
        if name == self.ctx.name:
            raise Conflict("a site cannot revoke itself; revoke it from another site")
        if not entry.active:
            return entry
        revoked = SiteEntry(
            name=entry.name,
            endpoint=entry.endpoint,
            public_key=entry.public_key,
            version=entry.version + 1,
            status=SiteStatus.REVOKED,
            location=entry.location,
            labels=entry.labels,
            capabilities=entry.capabilities,
            updated_at=self.ctx.clock(),
        )
        await self.merge([revoked])
        return revoked

    def signed_headers(self, target: str, method: str, path: str, body: bytes) -> dict[str, str]:
        return signed_headers(self.ctx, target=target, method=method, path=path, body=body)

    async def join_with(self, token: EnrollmentToken) -> list[SiteEntry]:
        """Present a one-time token to its issuer; adopt the registry it answers with."""
        path = "/edge/v1/fleet/join"
        body = orjson.dumps(
            {
                "token_id": token.token_id,
                "secret": token.secret,
                "site": self.self_entry.to_json(),
            }
        )
        headers = {
            "content-type": "application/json",
            **self.signed_headers(token.issuer, "POST", path, body),
        }
        try:
            response = await self.ctx.http.post(
                token.issuer_url + path, content=body, headers=headers, timeout=15.0
            )
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot reach {token.issuer} at {token.issuer_url}: {exc}") from exc
        if response.status_code >= 400:
            raise BadRequest(
                f"{token.issuer} refused the enrollment ({response.status_code}): {response.text}"
            )
        try:
            sites = [SiteEntry.from_json(raw) for raw in response.json()["sites"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise BadRequest(f"{token.issuer} answered the enrollment with garbage") from exc
        issuer = next((s for s in sites if s.name == token.issuer), None)
        if issuer is None or issuer.public_key != token.issuer_key:
            raise Unauthorized(
                f"{token.issuer_url} does not hold the key pinned in the enrollment token"
            )
        await self.merge(sites)
        log.info("joined the fleet through %s: %d sites", token.issuer, len(sites))
        return self.entries()

    def note_seen(self, site: str, rtt_ms: float | None) -> None:
        self.view.last_seen[site] = time.monotonic()
        if rtt_ms is not None:
            self.view.rtt.setdefault(self.ctx.name, {})[site] = rtt_ms
