"""Links driven from sync code and many links at once: the controls tests and tools use.

``WanLink`` runs one link in a background thread with its own event loop and makes
every control thread-safe (each blocks until applied), for sync tests and tools. ``Wan``
keeps many links (one per (client, server) pair, or one per server) on one background
thread and can cut a whole site. ``stop()`` stops every task and thread they started.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import resource
import threading
import zlib
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import uvloop

from edgefed.wan.link import AsyncWanLink
from edgefed.wan.profile import CutMode, LinkProfile, LinkStats, Target

CONTROL_TIMEOUT = 10.0

# Every connection through a link is two descriptors in this process; a fleet of a
# hundred sites that all talk to each other keeps ~10,000 connections open.
OPEN_FILES_WANTED = 1 << 16

T = TypeVar("T")


def raise_open_files_limit(wanted: int = OPEN_FILES_WANTED) -> int:
    """Raise this process's open-files limit toward ``wanted`` (the soft limit up to the
    hard one, and the hard one too where allowed); the limit in force afterwards. Site
    processes started afterwards inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    for limits in ((wanted, max(hard, wanted)), (min(hard, wanted), hard)):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
            return limits[0]
    return soft


class LoopThread:
    """An event loop in a daemon thread; runs callables and coroutines there, thread-safely."""

    def __init__(self, name: str) -> None:
        self.name = name
        # uvloop (a dependency of the sites' server) relays bytes with less CPU than
        # asyncio's own loop (docs/bench.md): the emulator shares the cores with the sites it
        # measures, so its cost shows in every benchmark over emulated links.
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> None:
        ready = threading.Event()
        self.loop.call_soon(ready.set)
        self.thread.start()
        if not ready.wait(CONTROL_TIMEOUT):
            raise RuntimeError(f"{self.name}: event loop thread did not start")

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self.thread:
            raise RuntimeError("a blocking WAN control was called from the WAN's own loop")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(CONTROL_TIMEOUT)

    def call(self, fn: Callable[[], T]) -> T:
        async def wrapper() -> T:
            return fn()

        return self.run(wrapper())

    def stop(self) -> None:
        if self.thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(CONTROL_TIMEOUT)
        elif not self.loop.is_closed():
            self.loop.close()


class WanLink:
    """A link driven from sync code: the proxy runs in a background event loop thread."""

    def __init__(
        self,
        target: Target,
        *,
        profile: LinkProfile | None = None,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        name: str = "",
        seed: int | None = None,
        _runner: LoopThread | None = None,
    ) -> None:
        self._link = AsyncWanLink(
            target,
            profile=profile,
            listen_host=listen_host,
            listen_port=listen_port,
            name=name,
            seed=seed,
        )
        self._own_runner = _runner is None
        self._runner = _runner or LoopThread(f"edgefed-wan-{self._link.name}")
        self._started = False

    def start(self) -> WanLink:
        if self._own_runner:
            self._runner.start()
        self._runner.run(self._link.start())
        self._started = True
        return self

    def stop(self) -> None:
        if self._started:
            self._started = False
            with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
                self._runner.run(self._link.stop())
        if self._own_runner:
            self._runner.stop()

    def __enter__(self) -> WanLink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def name(self) -> str:
        return self._link.name

    @property
    def port(self) -> int:
        return self._link.port

    @property
    def url(self) -> str:
        return self._link.url

    @property
    def stats(self) -> LinkStats:
        return self._runner.call(lambda: dataclasses.replace(self._link.stats))

    @property
    def profile(self) -> LinkProfile:
        return self._link.profile

    def set_profile(self, profile: LinkProfile) -> None:
        self._runner.call(lambda: self._link.set_profile(profile))

    def update(self, **changes: Any) -> None:
        self._runner.call(lambda: self._link.update(**changes))

    @property
    def cut_mode(self) -> CutMode | None:
        return self._link.cut_mode

    def cut(self, *, mode: CutMode = "stall") -> None:
        self._runner.call(lambda: self._link.cut(mode=mode))

    def heal(self) -> None:
        self._runner.call(self._link.heal)


class Wan:
    """Many links on one background thread, keyed by (client site, server site).

    ``client=None`` is a link every client shares to reach ``server``. A link is cut
    while it is cut itself or either of its sites is cut; a reset cut wins over a stall.
    """

    def __init__(self, *, seed: int | None = None) -> None:
        self._runner = LoopThread("edgefed-wan")
        self._seed = seed
        self._links: dict[tuple[str | None, str], WanLink] = {}
        self._cut_sites: dict[str, CutMode] = {}
        self._cut_links: dict[tuple[str | None, str], CutMode] = {}
        self._lock = threading.Lock()
        self._running = False

    def start(self) -> Wan:
        raise_open_files_limit()
        with self._lock:
            if not self._running:
                if self._runner.thread.ident is not None:  # stopped before: a fresh thread
                    self._runner = LoopThread("edgefed-wan")
                self._runner.start()
                self._running = True
        return self

    def stop(self) -> None:
        with self._lock:
            links, self._links = list(self._links.values()), {}
            running, self._running = self._running, False
        for link in links:
            link.stop()
        if running:
            self._runner.stop()

    def __enter__(self) -> Wan:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_link(
        self,
        *,
        server: str,
        target: Target,
        client: str | None = None,
        profile: LinkProfile | None = None,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
    ) -> WanLink:
        self.start()
        key = (client, server)
        with self._lock:
            if key in self._links:
                raise ValueError(f"a link {client or '*'} -> {server} exists already")
            seed = None if self._seed is None else zlib.crc32(f"{self._seed}:{key}".encode())
            link = WanLink(
                target,
                profile=profile,
                listen_host=listen_host,
                listen_port=listen_port,
                name=f"{client or '*'}->{server}",
                seed=seed,
                _runner=self._runner,
            ).start()
            self._links[key] = link
            self._apply(key)
        return link

    def link(self, *, server: str, client: str | None = None) -> WanLink:
        try:
            with self._lock:
                return self._links[(client, server)]
        except KeyError:
            raise KeyError(f"no link {client or '*'} -> {server}") from None

    def links(self) -> dict[tuple[str | None, str], WanLink]:
        with self._lock:
            return dict(self._links)

    def cut_site(self, site: str, *, mode: CutMode = "stall") -> None:
        """Partition a site from everyone: every link from or to it."""
        with self._lock:
            self._cut_sites[site] = mode
            self._apply_all()

    def heal_site(self, site: str) -> None:
        with self._lock:
            self._cut_sites.pop(site, None)
            self._apply_all()

    def cut_link(self, *, server: str, client: str | None = None, mode: CutMode = "stall") -> None:
        with self._lock:
            self._cut_links[(client, server)] = mode
            self._apply((client, server))

    def heal_link(self, *, server: str, client: str | None = None) -> None:
        with self._lock:
            self._cut_links.pop((client, server), None)
            self._apply((client, server))

    def heal_all(self) -> None:
        with self._lock:
            self._cut_sites.clear()
            self._cut_links.clear()
            self._apply_all()

    def _apply_all(self) -> None:
        for key in list(self._links):
            self._apply(key)

    def _apply(self, key: tuple[str | None, str]) -> None:
        link = self._links.get(key)
        if link is None:
            return
        client, server = key
        modes = {self._cut_links.get(key), self._cut_sites.get(server)}
        if client is not None:
            modes.add(self._cut_sites.get(client))
        modes.discard(None)
        if not modes:
            if link.cut_mode is not None:
                link.heal()
        else:
            mode: CutMode = "reset" if "reset" in modes else "stall"
            if link.cut_mode != mode:
                link.cut(mode=mode)
