"""A WAN emulator in userspace: one TCP proxy per link, with delay, bandwidth, loss and cuts.

The kernel of the test machines has no netem, yet edge sites live behind 10-300 ms
links that drop out. So a test puts a ``WanLink`` between a client and a site: it
listens on 127.0.0.1, forwards to the site, and shapes what passes.

How each knob is modelled, per direction of every connection:

- **delay**: every chunk read is stamped ``due = now + rtt/2`` and released when due.
  Chunks are stamped as they arrive, so a stream is delayed, not serialised behind one
  sleep per chunk; due times never go backwards, so order is kept.
- **bandwidth** (bytes/s): a token bucket per direction, shared by all connections of
  the link (it is the link's capacity), with a burst of one chunk.
- **loss**: TCP cannot lose bytes, so a lost segment shows up as a retransmission
  delay: with probability ``loss`` a chunk is held one extra ``rto_ms`` (default
  200 ms, Linux's minimum RTO), and everything behind it waits too (head-of-line
  blocking, as in TCP).
- **cut**: like a blackholed route. Existing connections stall (nothing is forwarded
  either way, so clients run into their own timeouts) and new connections are accepted
  but never reach the target. ``heal()`` resumes the survivors with no byte lost or
  reordered, and lets the waiting new connections through. ``cut(mode="reset")``
  instead resets every connection and every new one until healed (a crashed router,
  a firewall that rejects).

Buffers are bounded (``QUEUE_BYTES`` per direction of a connection); when full, reading
stops and TCP flow control pushes back on the sender. A sink that cannot keep up
(its socket buffer full) holds its pipe's releases back the same way.

Each connection is two ``asyncio.Protocol`` sockets and one timer per direction that
fires when the first queued chunk is due: no task or queue per connection. The
emulator shares the machine's cores with the sites it connects, so every benchmark
over emulated links pays its cost (a task-per-pipe version took twice the CPU).

``AsyncWanLink`` is the asyncio-native link for async tests; its control methods must
be called from its event loop. ``WanLink`` runs one in a background thread with its own
event loop and makes every control thread-safe, for sync tests and tools. ``Wan`` keeps
many links (one per (client, server) pair, or one per server) on one background thread
and can cut a whole site. ``stop()`` stops every task and thread they started.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import dataclasses
import random
import resource
import socket
import struct
import threading
import zlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urlsplit

import uvloop

CHUNK = 16 * 1024  # the bandwidth limit's burst
QUEUE_BYTES = 1 << 20  # per direction of a connection; reading pauses beyond
CONTROL_TIMEOUT = 10.0

# Every connection through a link is two descriptors in this process; a fleet of a
# hundred sites that all talk to each other keeps ~10,000 connections open.
OPEN_FILES_WANTED = 1 << 16

CutMode = Literal["stall", "reset"]
Target = tuple[str, int] | str
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LinkProfile:
    """The shape of a link; the same in both directions."""

    rtt_ms: float = 0.0
    bandwidth: float | None = None  # bytes per second per direction; None = unlimited
    loss: float = 0.0  # probability that a chunk arrives one RTO late
    rto_ms: float = 200.0
    # The client's connect() returns at once (the proxy is local), but on a real link
    # the handshake costs one RTT before the first byte can leave: charge it to the
    # first bytes of each connection.
    handshake: bool = True

    def __post_init__(self) -> None:
        if self.rtt_ms < 0 or self.rto_ms < 0:
            raise ValueError("rtt_ms and rto_ms must be >= 0")
        if self.bandwidth is not None and self.bandwidth <= 0:
            raise ValueError("bandwidth must be > 0 bytes/s (or None for unlimited)")
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError("loss is a probability between 0 and 1")


@dataclass(slots=True)
class LinkStats:
    connections: int = 0
    bytes_up: int = 0  # client -> target
    bytes_down: int = 0  # target -> client


def parse_target(target: Target) -> tuple[str, int]:
    """``("127.0.0.1", 5001)`` or ``"http://127.0.0.1:5001"`` -> host and port."""
    if isinstance(target, tuple):
        return target
    parts = urlsplit(target)
    if not parts.hostname or not parts.port:
        raise ValueError(f"target {target!r} needs a host and a port")
    return parts.hostname, parts.port


class _TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp: float | None = None  # set on first use

    def charge(self, amount: int, now: float) -> float:
        """Take ``amount`` bytes' worth of tokens; how long the sender must wait before
        sending them (later takers see the debt and wait behind this one)."""
        elapsed = 0.0 if self.stamp is None else now - self.stamp
        self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.stamp = now
        self.tokens -= amount
        return -self.tokens / self.rate if self.tokens < 0 else 0.0


_EOF = b""
_RESET = None  # the source broke: tear the connection down once this is due


class AsyncWanLink:
    """A shaped TCP proxy on 127.0.0.1 in the running event loop."""

    def __init__(
        self,
        target: Target,
        *,
        profile: LinkProfile | None = None,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        name: str = "",
        seed: int | None = None,
    ) -> None:
        self.target = parse_target(target)
        self.name = name or f"link-to-{self.target[1]}"
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.stats = LinkStats()
        self._profile = profile or LinkProfile()
        self._random = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cut_mode: CutMode | None = None
        self._connections: set[_Connection] = set()
        self._buckets: dict[str, _TokenBucket] = {}

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> AsyncWanLink:
        self._loop = asyncio.get_running_loop()
        self._apply_bandwidth()
        self._server = await self._loop.create_server(
            lambda: _Connection(self).client_side, self.listen_host, self.listen_port
        )
        self.listen_port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        connections = list(self._connections)
        for conn in connections:
            conn.abort(reset=False)
        await asyncio.gather(
            *(c.connecting for c in connections if c.connecting), return_exceptions=True
        )
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> AsyncWanLink:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self.listen_port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: where a client reaches the target through the link."""
        return f"http://{self.listen_host}:{self.listen_port}"

    # --- controls (call them from the link's event loop) ----------------------------------

    @property
    def profile(self) -> LinkProfile:
        return self._profile

    def set_profile(self, profile: LinkProfile) -> None:
        """Applies to bytes read from now on (bytes in flight keep their due time)."""
        self._profile = profile
        self._apply_bandwidth()

    def update(self, **changes: Any) -> None:
        """``link.update(rtt_ms=80)``: change some knobs of the profile."""
        self.set_profile(dataclasses.replace(self._profile, **changes))

    @property
    def cut_mode(self) -> CutMode | None:
        """None while the link is up."""
        return self._cut_mode

    def cut(self, *, mode: CutMode = "stall") -> None:
        if mode not in ("stall", "reset"):
            raise ValueError(f"cut mode must be 'stall' or 'reset', not {mode!r}")
        assert self._loop is not None, "start the link first"
        self._cut_mode = mode
        if mode == "reset":
            for conn in list(self._connections):
                conn.abort(reset=True)

    def heal(self) -> None:
        assert self._loop is not None, "start the link first"
        self._cut_mode = None
        for conn in list(self._connections):
            conn.resume()

    # --- forwarding -----------------------------------------------------------------------

    def _apply_bandwidth(self) -> None:
        rate = self._profile.bandwidth
        if rate is None:
            self._buckets.clear()
            return
        for direction in ("up", "down"):
            bucket = self._buckets.get(direction)
            if bucket is None:
                self._buckets[direction] = _TokenBucket(rate, burst=float(CHUNK))
            else:
                bucket.rate = rate

    def _due(self, now: float) -> float:
        profile = self._profile
        delay = profile.rtt_ms / 2000.0
        if profile.loss and self._random.random() < profile.loss:
            delay += profile.rto_ms / 1000.0
        return now + delay


class _Side(asyncio.Protocol):
    """One socket of a connection: what it reads goes into ``pipe``; ``sink_of`` is the
    pipe that writes into it (for flow control)."""

    def __init__(self, conn: _Connection, pipe: _Pipe, sink_of: _Pipe) -> None:
        self.conn = conn
        self.pipe = pipe
        self.sink_of = sink_of
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)
        self.conn.side_made(self)

    def data_received(self, data: bytes) -> None:
        self.pipe.feed(data)

    def eof_received(self) -> bool:
        self.pipe.feed(_EOF)
        return True  # keep the other direction open (a half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.side_lost(self, exc)

    def pause_writing(self) -> None:
        self.sink_of.sink_paused = True

    def resume_writing(self) -> None:
        self.sink_of.sink_paused = False
        self.sink_of.schedule()


class _Pipe:
    """One direction of a connection: each chunk read is stamped ``due`` and written
    to the other side when due, in order, by a timer on the loop (no task per pipe)."""

    __slots__ = (
        "conn",
        "direction",
        "ended",
        "finished",
        "last_due",
        "paid",
        "queue",
        "queued",
        "reading_paused",
        "sink",
        "sink_paused",
        "source",
        "timer",
    )  # fmt: skip

    def __init__(self, conn: _Connection, direction: str, not_before: float = 0.0) -> None:
        self.conn = conn
        self.direction = direction
        self.queue: collections.deque[tuple[float, bytes | None]] = collections.deque()
        self.queued = 0
        self.last_due = not_before
        self.timer: asyncio.TimerHandle | None = None
        self.source: _Side | None = None
        self.sink: _Side | None = None
        self.sink_paused = False
        self.reading_paused = False
        self.paid = False  # the first queued chunk's bandwidth is paid for
        self.ended = False  # EOF or a reset read: nothing more comes
        self.finished = False  # EOF delivered

    def feed(self, data: bytes | None) -> None:
        if self.ended:
            return
        self.ended = not data
        link = self.conn.link
        assert link._loop is not None
        # Never overtake an earlier chunk: due times only go forward.
        self.last_due = max(link._due(link._loop.time()), self.last_due)
        self.queue.append((self.last_due, data))
        if data:
            self.queued += len(data)
            if self.queued > QUEUE_BYTES and not self.reading_paused:
                self.reading_paused = True
                self.conn.pause_reading(self.source)
        self.schedule()

    def schedule(self, at: float | None = None) -> None:
        """Arm the timer for the first chunk (or ``at``) unless armed, blocked or idle."""
        link = self.conn.link
        if self.timer is not None or not self.queue or self.sink is None:
            return
        if self.sink_paused or link._cut_mode is not None:
            return  # resume_writing() or heal() schedules again
        assert link._loop is not None
        self.timer = link._loop.call_at(self.queue[0][0] if at is None else at, self.release)

    def release(self) -> None:
        self.timer = None
        link = self.conn.link
        assert link._loop is not None and self.sink is not None
        transport = self.sink.transport
        now = link._loop.time()
        while self.queue and not self.sink_paused and link._cut_mode is None:
            due, data = self.queue[0]
            if due > now:
                break
            if data is _RESET:
                self.conn.abort(reset=True)
                return
            if data == _EOF:
                self.queue.popleft()
                if (
                    transport is not None
                    and not transport.is_closing()
                    and transport.can_write_eof()
                ):
                    with contextlib.suppress(OSError, RuntimeError):
                        transport.write_eof()
                self.finished = True
                self.conn.pipe_finished()
                return
            bucket = link._buckets.get(self.direction)
            if bucket is not None and not self.paid:
                self.paid = True
                wait = bucket.charge(len(data), now)
                if wait > 0:
                    self.schedule(at=now + wait)
                    return
            self.queue.popleft()
            self.paid = False
            self.queued -= len(data)
            if transport is not None and not transport.is_closing():
                transport.write(data)
            if self.direction == "up":
                link.stats.bytes_up += len(data)
            else:
                link.stats.bytes_down += len(data)
        if self.reading_paused and self.queued <= QUEUE_BYTES // 2:
            self.reading_paused = False
            self.conn.resume_reading(self.source)
        self.schedule()

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class _Connection:
    """One client connection: the client's socket, the target's, and a pipe each way,
    ``up`` (client to target) and ``down``."""

    def __init__(self, link: AsyncWanLink) -> None:
        assert link._loop is not None
        self.link = link
        self.accepted_at = link._loop.time()
        self.up = _Pipe(self, "up", not_before=self._handshake())
        self.down = _Pipe(self, "down")
        self.client_side = _Side(self, self.up, sink_of=self.down)
        self.target_side: _Side | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.closed = False
        self.up.source = self.client_side
        self.down.sink = self.client_side

    def _handshake(self) -> float:
        """When the first client byte may reach the target: one RTT after the accept."""
        profile = self.link.profile
        if not profile.handshake:
            return 0.0
        return self.accepted_at + profile.rtt_ms / 1000.0 + profile.rtt_ms / 2000.0

    # --- the sockets ------------------------------------------------------------------

    def side_made(self, side: _Side) -> None:
        link = self.link
        if side is not self.client_side:  # the target answered the link's connect
            if self.closed:
                assert side.transport is not None
                side.transport.abort()
                return
            self.target_side = side
            self.up.sink = side
            self.down.source = side
            self.resume_reading(self.client_side)
            self.up.schedule()
            return
        link.stats.connections += 1
        link._connections.add(self)
        if link._cut_mode == "reset":
            self.abort(reset=True)
            return
        # Nothing is read from the client before the target is reached (a blackholed
        # link never lets the connection through while cut).
        self.pause_reading(side)
        if link._cut_mode is None:
            self._connect()

    def _connect(self) -> None:
        if self.connecting is None and not self.closed:
            assert self.link._loop is not None
            self.connecting = self.link._loop.create_task(self._open_target())

    async def _open_target(self) -> None:
        link = self.link
        assert link._loop is not None
        try:
            await link._loop.create_connection(
                lambda: _Side(self, self.down, sink_of=self.up), *link.target
            )
        except OSError:
            self.abort(reset=True)  # the target refused: so does the link

    def side_lost(self, side: _Side, exc: Exception | None) -> None:
        if self.closed:
            return
        pipe = side.pipe
        # One side broke: the other sees it broken too, once what it sent before is due.
        pipe.feed(_RESET if exc is not None else _EOF)

    def pipe_finished(self) -> None:
        if self.up.finished and self.down.finished:
            self.close()

    def pause_reading(self, side: _Side | None) -> None:
        if side is not None and side.transport is not None:
            with contextlib.suppress(RuntimeError):
                side.transport.pause_reading()

    def resume_reading(self, side: _Side | None) -> None:
        if side is not None and side.transport is not None and not side.transport.is_closing():
            with contextlib.suppress(RuntimeError):
                side.transport.resume_reading()

    def resume(self) -> None:
        """After a heal: reach the target if not yet done, and release what is due."""
        if self.target_side is None:
            self._connect()
        self.up.schedule()
        self.down.schedule()

    # --- ending -----------------------------------------------------------------------

    def close(self) -> None:
        """Graceful: flush what was written, then FIN."""
        self._end()
        for transport in self._transports():
            transport.close()

    def abort(self, *, reset: bool) -> None:
        """Drop both sockets now; with ``reset`` the peers see a RST, not a FIN."""
        self._end()
        for transport in self._transports():
            if reset:
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
            transport.abort()

    def _end(self) -> None:
        self.closed = True
        self.up.cancel()
        self.down.cancel()
        self.link._connections.discard(self)
        if self.connecting is not None and not self.connecting.done():
            self.connecting.cancel()

    def _transports(self) -> list[asyncio.Transport]:
        sides = (self.client_side, self.target_side)
        return [s.transport for s in sides if s is not None and s.transport is not None]


# --- running links from sync code ---------------------------------------------------------


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


class _LoopThread:
    """An event loop in a daemon thread; runs callables and coroutines there, thread-safely."""

    def __init__(self, name: str) -> None:
        self.name = name
        # uvloop (a dependency of the sites' server) relays bytes at about half the
        # CPU of asyncio's own loop: the emulator shares the cores with the sites it
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
        listen_port: int = 0,
        name: str = "",
        seed: int | None = None,
        _runner: _LoopThread | None = None,
    ) -> None:
        self._link = AsyncWanLink(
            target, profile=profile, listen_port=listen_port, name=name, seed=seed
        )
        self._own_runner = _runner is None
        self._runner = _runner or _LoopThread(f"edgefed-wan-{self._link.name}")
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
        self._runner = _LoopThread("edgefed-wan")
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
                    self._runner = _LoopThread("edgefed-wan")
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
