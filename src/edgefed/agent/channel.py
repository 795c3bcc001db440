"""The agent's side of the command channel: ``CommandLoop``.

It long-polls the site for its host's commands (each poll bounded: the site answers
after at most ``poll_wait`` seconds, empty-handed if need be), runs each command as a
task, and posts the answer, retrying while the site does not answer. A site that
restarts is noticed by its new ``site_instance``, or by the polls that fail meanwhile:
the agent then reports every guest it has again (``full``), so the site re-adopts
them. The first poll after the agent starts says ``restarted``: commands it had been
sent and never answered are sent again.

Guests that change by themselves (powered off, crashed) are reported as they change;
the network plan is fetched every ``network_interval`` seconds (with its ETag) and
applied when it changed, and before every spawn.

A report that was lost (the site did not take it within the retries) heals by itself:
every ``resync_interval`` seconds the agent reports every guest again (``full``) if
their states differ from the last full report the site took (a digest), and at least
every ``resync_max_quiet`` seconds anyway, never while a command runs (its answer
must not be overtaken by a report read before it).

When its host booted (``hostboot.BootMarker``), the agent asks the site which of its
guests it expects running (``GET /agent/guests``) before its first report, and starts
those it finds powered off, as Nova's ``resume_guests_state_on_host_boot``: the
servers stay ACTIVE, the others stay off. It acts on its own site's answer, over its
authenticated channel, for guests it has only.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from edgefed.agent.guests import CommandRefused, GuestRunner
from edgefed.agent.hostboot import BootMarker
from edgefed.agent.image_fetch import download_image
from edgefed.drivers.base import ImageData, PowerState
from edgefed.drivers.hostnet import SiteNetwork
from edgefed.drivers.planwire import plan_from_json

log = logging.getLogger("edgefed.agent.channel")

AGENT_PATH = "/edge/v1/hosts/agent"
CREDENTIAL_HEADER = "X-Host-Credential"
# Seconds between attempts while the site does not answer (the last one repeats).
RETRY_BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0)
# Guests started at once after the host booted.
RESUME_CONCURRENCY = 4


@dataclass(frozen=True, slots=True)
class ChannelSettings:
    poll_wait: float = 4.0
    network_interval: float = 2.0
    # How long an answer is retried while the site does not take it.
    answer_patience: float = 600.0
    # How often the guests' states are compared with the last full report, and how
    # long at most between two full reports (Nova syncs power states every 600 s).
    resync_interval: float = 30.0
    resync_max_quiet: float = 600.0


class CredentialRefused(Exception):
    """The site no longer accepts this host's credential."""


class CommandLoop:
    def __init__(
        self,
        *,
        site_url: str,
        credential: Callable[[], str],
        runner: GuestRunner,
        network: SiteNetwork | None,
        client: httpx.AsyncClient,
        settings: ChannelSettings | None = None,
        boot: BootMarker | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.site_url = site_url.rstrip("/")
        self.credential = credential
        self.runner = runner
        self.network = network
        self.client = client
        self.settings = settings or ChannelSettings()
        self.site_instance: str | None = None
        self._plan_etag: str | None = None
        self._network_lock = asyncio.Lock()
        self._changes: asyncio.Queue[tuple[str, PowerState]] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server_locks: dict[str, asyncio.Lock] = {}
        self._stopping = asyncio.Event()
        # Host reboot: whether the site is still to be asked which guests to start.
        self.boot = boot
        self._resume_pending = boot is not None and boot.booted()
        # The periodic resync: the digest of the last full report the site took (None:
        # a report was lost since), when, and the commands running now.
        self.clock = clock
        self._reported_digest: str | None = None
        self._reported_at = 0.0
        self._running = 0
        self._report_gate = asyncio.Lock()

    def _headers(self) -> dict[str, str]:
        return {CREDENTIAL_HEADER: self.credential()}

    def _url(self, path: str) -> str:
        return f"{self.site_url}{AGENT_PATH}{path}"

    def guest_changed(self, guest_id: str, power: PowerState) -> None:
        """QEMU's listener (called on the loop): report it."""
        self._changes.put_nowait((guest_id, power))

    def stop(self) -> None:
        self._stopping.set()

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        """Until ``stop()``: adopt, report, poll and run commands, sync the network."""
        await self.runner.adopt()
        background = [
            asyncio.create_task(self._report_changes(), name="agent-reports"),
            asyncio.create_task(self._network_loop(), name="agent-network"),
            asyncio.create_task(self._resync_loop(), name="agent-resync"),
        ]
        try:
            await self._poll_loop()
        finally:
            for task in [*background, *self._tasks]:
                task.cancel()
            await asyncio.gather(*background, *self._tasks, return_exceptions=True)

    async def _poll_loop(self) -> None:
        restarted = True
        failures = 0
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                poll = asyncio.create_task(self._poll(restarted))
                await asyncio.wait([poll, stopping], return_when=asyncio.FIRST_COMPLETED)
                if not poll.done():
                    poll.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await poll
                    return
                try:
                    doc = poll.result()
                except httpx.HTTPError as exc:
                    delay = RETRY_BACKOFF[min(failures, len(RETRY_BACKOFF) - 1)]
                    failures += 1
                    self.site_instance = None  # report everything once it is back
                    log.warning("no answer from the site (%r); polling again in %ss", exc, delay)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._stopping.wait()
                    continue
                failures = 0
                restarted = False
                if self._resume_pending:
                    await self._resume_after_boot()
                if doc.get("site_instance") != self.site_instance:
                    try:
                        await self.report_all()
                        self.site_instance = doc.get("site_instance")
                    except httpx.HTTPError as exc:
                        log.warning("reporting every guest: %r; again after the next poll", exc)
                for command in doc.get("commands") or ():
                    task = asyncio.create_task(self._execute(command))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        finally:
            stopping.cancel()

    async def _poll(self, restarted: bool) -> dict[str, Any]:
        r = await self.client.post(
            self._url("/commands"),
            json={"wait": self.settings.poll_wait, "restarted": restarted},
            headers=self._headers(),
            timeout=self.settings.poll_wait + 15.0,
        )
        if r.status_code == 401:
            raise CredentialRefused("the site refused this host's credential")
        if r.status_code != 200:
            raise httpx.HTTPStatusError(
                f"polling answered {r.status_code}", request=r.request, response=r
            )
        doc: dict[str, Any] = r.json()
        return doc

    # -- commands --------------------------------------------------------------------------

    async def _execute(self, command: dict[str, Any]) -> None:
        """Run one command; the commands of one server run one at a time, in the order
        the site sent them (a destroy waits for the spawn under way)."""
        # (A lock per server the agent was ever sent: a few hundred bytes each.)
        lock = self._server_locks.setdefault(str(command.get("server_id")), asyncio.Lock())
        async with lock:
            async with self._report_gate:  # a full report on its way arrives first
                self._running += 1
            try:
                await self._execute_now(command)
            finally:
                self._running -= 1

    async def _execute_now(self, command: dict[str, Any]) -> None:
        command_id = str(command.get("id"))
        kind = str(command.get("kind"))
        body: dict[str, Any]
        try:
            result = await self.runner.run(
                kind, command.get("server_id"), command.get("payload") or {}
            )
            body = {"result": result}
            log.info("command %s (%s of %s) done", command_id, kind, command.get("server_id"))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("command %s (%s) failed: %s", command_id, kind, exc)
            body = {"error": str(exc) or type(exc).__name__}
        await self._answer(command_id, body)

    async def _answer(self, command_id: str, body: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.settings.answer_patience
        attempt = 0
        while True:
            try:
                r = await self.client.post(
                    self._url(f"/commands/{command_id}"), json=body, headers=self._headers()
                )
                if r.status_code in (204, 404):
                    # 404: the site failed or forgot the command meanwhile (its deadline).
                    return
                log.warning("the site refused the answer to %s: %s", command_id, r.status_code)
            except httpx.HTTPError as exc:
                log.warning("answering %s: %r", command_id, exc)
            if loop.time() > give_up:
                log.error("gave up answering command %s", command_id)
                return
            await asyncio.sleep(RETRY_BACKOFF[min(attempt, len(RETRY_BACKOFF) - 1)])
            attempt += 1

    # -- reports ---------------------------------------------------------------------------

    def _guest_states(self) -> dict[str, int]:
        return {g: int(self.runner.hv.power_state(g)) for g in self.runner.hv.guest_ids()}

    async def report_all(self) -> None:
        """Every guest this host has, with the hypervisor's facts."""
        async with self._report_gate:
            guests = self._guest_states()
            if await self._report({"guests": guests, "full": True, "facts": self.runner.facts()}):
                self._reported_digest, self._reported_at = _digest(guests), self.clock()

    async def resync(self) -> bool:
        """Report every guest again if their states differ from the last full report
        the site took, or if it is ``resync_max_quiet`` old; whether it reported. Not
        before the first report (the poll loop makes it), nor while a command runs."""
        if self.site_instance is None:
            return False
        async with self._report_gate:
            if self._running:
                return False
            guests = self._guest_states()
            digest = _digest(guests)
            quiet = self.clock() - self._reported_at
            if digest == self._reported_digest and quiet < self.settings.resync_max_quiet:
                return False
            if digest != self._reported_digest:
                log.info("guest states differ from the last full report: reporting them all")
            if await self._report({"guests": guests, "full": True}):
                self._reported_digest, self._reported_at = digest, self.clock()
            return True

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_interval)
            try:
                await self.resync()
            except httpx.HTTPError as exc:
                log.warning("resync of the guests' states failed: %r", exc)

    async def _report(self, body: dict[str, Any]) -> bool:
        r = await self.client.post(self._url("/guests"), json=body, headers=self._headers())
        if r.status_code != 204:
            log.warning("the site refused a guest report: %s", r.status_code)
            return False
        return True

    async def _report_changes(self) -> None:
        while True:
            guest_id, power = await self._changes.get()
            changes = {guest_id: int(power)}
            while not self._changes.empty():
                more_id, more = self._changes.get_nowait()
                changes[more_id] = int(more)
            for attempt in range(len(RETRY_BACKOFF)):
                try:
                    if await self._report({"guests": changes}):
                        break
                except httpx.HTTPError as exc:
                    log.warning("reporting %s: %r", changes, exc)
                await asyncio.sleep(RETRY_BACKOFF[attempt])
            else:
                # Lost: the next resync reports every guest, whatever their digest.
                self._reported_digest = None

    # -- after the host booted -----------------------------------------------------------

    async def _resume_after_boot(self) -> None:
        """Ask the site which guests it expects running and start those found powered
        off; once it answered, the host's boot is settled (an error leaves it pending
        for the next poll)."""
        try:
            r = await self.client.get(self._url("/guests"), headers=self._headers())
            r.raise_for_status()
            doc = r.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("asking the site which guests to resume: %r", exc)
            return
        expected = {str(g) for g in doc.get("running") or ()}
        off = (PowerState.SHUTDOWN, PowerState.CRASHED)
        resume = [
            g
            for g in self.runner.hv.guest_ids()
            if g in expected and self.runner.hv.power_state(g) in off
        ]
        if resume:
            log.info("the host booted: starting %d guest(s) the site expects running", len(resume))
            if self.network is not None:
                try:
                    await self.sync_network()  # their taps went with the boot
                except Exception as exc:
                    log.warning("network sync before resuming guests failed: %r", exc)
            limit = asyncio.Semaphore(RESUME_CONCURRENCY)
            await asyncio.gather(*(self._resume(g, limit) for g in resume))
        self._resume_pending = False
        assert self.boot is not None
        self.boot.settle()

    async def _resume(self, guest_id: str, limit: asyncio.Semaphore) -> None:
        async with limit, self._server_locks.setdefault(guest_id, asyncio.Lock()):
            async with self._report_gate:
                self._running += 1
            try:
                await self.runner.run("start", guest_id, {})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("could not resume guest %s after the host booted: %s", guest_id, exc)
                return
            finally:
                self._running -= 1
        self.guest_changed(guest_id, self.runner.hv.power_state(guest_id))

    # -- image data -----------------------------------------------------------------------

    async def fetch_image(self, image: ImageData, directory: Path) -> Path:
        """The image's data from the site, checked against its sha256 as it arrives."""
        url = self._url(f"/images/{image.id}")
        return await download_image(self.client, url, self._headers(), image, directory)

    # -- volumes over the network ---------------------------------------------------------

    async def export_volume(self, server_id: str, volume_id: str) -> dict[str, Any]:
        """The NBD export the site makes of a volume this host's server holds, for a
        host that cannot read the volume's file (CommandRefused with the site's reason
        when it refuses)."""
        r = await self.client.post(
            self._url(f"/volumes/{volume_id}/export"),
            headers=self._headers(),
            json={"server_id": server_id},
        )
        if r.status_code != 200:
            raise CommandRefused(
                f"the site cannot export volume {volume_id} to this host: {_reason(r)}"
            )
        nbd = r.json().get("nbd")
        if not isinstance(nbd, dict):
            raise CommandRefused(f"the site answered no export of volume {volume_id}")
        return nbd

    # -- the network -----------------------------------------------------------------------

    async def sync_network(self) -> None:
        """Fetch this host's network plan and apply it if it changed."""
        if self.network is None:
            return
        async with self._network_lock:
            headers = self._headers()
            if self._plan_etag is not None:
                headers["If-None-Match"] = self._plan_etag
            r = await self.client.get(self._url("/network"), headers=headers)
            if r.status_code == 304:
                return
            r.raise_for_status()
            await self.network.apply(plan_from_json(r.json()))
            self._plan_etag = r.headers.get("etag")

    async def _network_loop(self) -> None:
        while True:
            try:
                await self.sync_network()
            except Exception as exc:
                log.warning("network sync failed, retrying: %r", exc)
            await asyncio.sleep(self.settings.network_interval)


def _reason(r: httpx.Response) -> str:
    """The site's message in a refusal (its faults are ``{"<kind>": {"message": …}}``)."""
    try:
        doc = r.json()
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        for value in doc.values():
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return f"{value['message']} ({r.status_code})"
    return f"HTTP {r.status_code}"


def _digest(guests: dict[str, int]) -> str:
    return hashlib.sha256(json.dumps(guests, sort_keys=True).encode()).hexdigest()
