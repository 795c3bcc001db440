"""The engine of a link: how bytes cross it, delayed, rate-limited, held by a cut.

Each connection is two ``asyncio.Protocol`` sockets (the client's and the target's) and
one timer per direction, armed for when the first queued chunk is due: no task or queue
per connection (the emulator shares the cores with the sites it connects: docs/bench.md).

- **delay**: every chunk read is stamped ``due = now + rtt/2`` and released when due.
  Chunks are stamped as they arrive, so a stream is delayed, not serialised behind one
  sleep per chunk; due times never go backwards, so order is kept.
- **bandwidth** (bytes/s): a token bucket per direction, shared by all connections of
  the link (it is the link's capacity), with a burst of one chunk.
- **loss**: TCP cannot lose bytes, so a lost segment shows up as a retransmission
  delay: with probability ``loss`` a chunk is held one extra ``rto_ms``, and everything
  behind it waits too (head-of-line blocking, as in TCP).
- **cut**: nothing is released either way while the link is cut, and a new connection
  does not reach the target; ``heal()`` resumes both with no byte lost or reordered. A
  reset cut aborts every connection with a RST instead.

Buffers are bounded (``QUEUE_BYTES`` per direction of a connection); when full, reading
stops and TCP flow control pushes back on the sender. A sink that cannot keep up (its
socket buffer full) holds its pipe's releases back the same way.

``Shaper`` is what the connections of one link share; the link (``wan.link``) owns one
and serves its listening socket with ``Shaper.accept``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import random
import socket
import struct
from typing import cast

from edgefed.wan.profile import CutMode, LinkProfile, LinkStats

CHUNK = 16 * 1024  # the bandwidth limit's burst
QUEUE_BYTES = 1 << 20  # per direction of a connection; reading pauses beyond

_EOF = b""
_RESET = None  # the source broke: tear the connection down once this is due


class TokenBucket:
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


class Shaper:
    """What every connection of one link shares: its target, its shape (due times and
    bandwidth buckets), whether it is cut, its counters and its open connections."""

    def __init__(self, target: tuple[str, int], profile: LinkProfile, *, seed: int | None) -> None:
        self.target = target
        self.profile = profile
        self.random = random.Random(seed)
        self.loop: asyncio.AbstractEventLoop | None = None  # set when the link starts
        self.cut_mode: CutMode | None = None
        self.connections: set[Connection] = set()
        self.buckets: dict[str, TokenBucket] = {}
        self.stats = LinkStats()
        self._apply_bandwidth()

    def accept(self) -> asyncio.Protocol:
        """The protocol factory of the link's listening socket: a new connection."""
        return Connection(self).client_side

    def set_profile(self, profile: LinkProfile) -> None:
        """Applies to bytes read from now on (bytes in flight keep their due time)."""
        self.profile = profile
        self._apply_bandwidth()

    def due(self, now: float) -> float:
        profile = self.profile
        delay = profile.rtt_ms / 2000.0
        if profile.loss and self.random.random() < profile.loss:
            delay += profile.rto_ms / 1000.0
        return now + delay

    def cut(self, mode: CutMode) -> None:
        self.cut_mode = mode
        if mode == "reset":
            for conn in list(self.connections):
                conn.abort(reset=True)

    def heal(self) -> None:
        self.cut_mode = None
        for conn in list(self.connections):
            conn.resume()

    async def close(self) -> None:
        """Abort every connection and wait for the connects still under way."""
        connections = list(self.connections)
        for conn in connections:
            conn.abort(reset=False)
        await asyncio.gather(
            *(c.connecting for c in connections if c.connecting), return_exceptions=True
        )

    def _apply_bandwidth(self) -> None:
        rate = self.profile.bandwidth
        if rate is None:
            self.buckets.clear()
            return
        for direction in ("up", "down"):
            bucket = self.buckets.get(direction)
            if bucket is None:
                self.buckets[direction] = TokenBucket(rate, burst=float(CHUNK))
            else:
                bucket.rate = rate


class Side(asyncio.Protocol):
    """One socket of a connection: what it reads goes into ``pipe``; ``sink_of`` is the
    pipe that writes into it (for flow control)."""

    def __init__(self, conn: Connection, pipe: Pipe, sink_of: Pipe) -> None:
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


class Pipe:
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

    def __init__(self, conn: Connection, direction: str, not_before: float = 0.0) -> None:
        self.conn = conn
        self.direction = direction
        self.queue: collections.deque[tuple[float, bytes | None]] = collections.deque()
        self.queued = 0
        self.last_due = not_before
        self.timer: asyncio.TimerHandle | None = None
        self.source: Side | None = None
        self.sink: Side | None = None
        self.sink_paused = False
        self.reading_paused = False
        self.paid = False  # the first queued chunk's bandwidth is paid for
        self.ended = False  # EOF or a reset read: nothing more comes
        self.finished = False  # EOF delivered

    def feed(self, data: bytes | None) -> None:
        if self.ended:
            return
        self.ended = not data
        shaper = self.conn.shaper
        assert shaper.loop is not None
        # Never overtake an earlier chunk: due times only go forward.
        self.last_due = max(shaper.due(shaper.loop.time()), self.last_due)
        self.queue.append((self.last_due, data))
        if data:
            self.queued += len(data)
            if self.queued > QUEUE_BYTES and not self.reading_paused:
                self.reading_paused = True
                self.conn.pause_reading(self.source)
        self.schedule()

    def schedule(self, at: float | None = None) -> None:
        """Arm the timer for the first chunk (or ``at``) unless armed, blocked or idle."""
        shaper = self.conn.shaper
        if self.timer is not None or not self.queue or self.sink is None:
            return
        if self.sink_paused or shaper.cut_mode is not None:
            return  # resume_writing() or heal() schedules again
        assert shaper.loop is not None
        self.timer = shaper.loop.call_at(self.queue[0][0] if at is None else at, self.release)

    def release(self) -> None:
        self.timer = None
        shaper = self.conn.shaper
        assert shaper.loop is not None and self.sink is not None
        transport = self.sink.transport
        now = shaper.loop.time()
        while self.queue and not self.sink_paused and shaper.cut_mode is None:
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
            bucket = shaper.buckets.get(self.direction)
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
                shaper.stats.bytes_up += len(data)
            else:
                shaper.stats.bytes_down += len(data)
            # Here, not after the loop: a pipe the bandwidth holds returns from the loop
            # above once per chunk, and reading again only when it had drained left the
            # link idle for the delay of the next bytes (-25 % of 100 Mbit/s at 50 ms).
            if self.reading_paused and self.queued <= QUEUE_BYTES // 2:
                self.reading_paused = False
                self.conn.resume_reading(self.source)
        self.schedule()

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class Connection:
    """One client connection: the client's socket, the target's, and a pipe each way,
    ``up`` (client to target) and ``down``."""

    def __init__(self, shaper: Shaper) -> None:
        assert shaper.loop is not None
        self.shaper = shaper
        self.accepted_at = shaper.loop.time()
        self.up = Pipe(self, "up", not_before=self._handshake())
        self.down = Pipe(self, "down")
        self.client_side = Side(self, self.up, sink_of=self.down)
        self.target_side: Side | None = None
        self.connecting: asyncio.Task[None] | None = None
        self.closed = False
        self.up.source = self.client_side
        self.down.sink = self.client_side

    def _handshake(self) -> float:
        """When the first client byte may reach the target: one RTT after the accept."""
        profile = self.shaper.profile
        if not profile.handshake:
            return 0.0
        return self.accepted_at + profile.rtt_ms / 1000.0 + profile.rtt_ms / 2000.0

    # --- the sockets ------------------------------------------------------------------

    def side_made(self, side: Side) -> None:
        shaper = self.shaper
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
        shaper.stats.connections += 1
        shaper.connections.add(self)
        if shaper.cut_mode == "reset":
            self.abort(reset=True)
            return
        # Nothing is read from the client before the target is reached (a blackholed
        # link never lets the connection through while cut).
        self.pause_reading(side)
        if shaper.cut_mode is None:
            self._connect()

    def _connect(self) -> None:
        if self.connecting is None and not self.closed:
            assert self.shaper.loop is not None
            self.connecting = self.shaper.loop.create_task(self._open_target())

    async def _open_target(self) -> None:
        shaper = self.shaper
        assert shaper.loop is not None
        try:
            await shaper.loop.create_connection(
                lambda: Side(self, self.down, sink_of=self.up), *shaper.target
            )
        except OSError:
            self.abort(reset=True)  # the target refused: so does the link

    def side_lost(self, side: Side, exc: Exception | None) -> None:
        if self.closed:
            return
        pipe = side.pipe
        # One side broke: the other sees it broken too, once what it sent before is due.
        pipe.feed(_RESET if exc is not None else _EOF)

    def pipe_finished(self) -> None:
        if self.up.finished and self.down.finished:
            self.close()

    def pause_reading(self, side: Side | None) -> None:
        if side is not None and side.transport is not None:
            with contextlib.suppress(RuntimeError):
                side.transport.pause_reading()

    def resume_reading(self, side: Side | None) -> None:
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
        self.shaper.connections.discard(self)
        if self.connecting is not None and not self.connecting.done():
            self.connecting.cancel()

    def _transports(self) -> list[asyncio.Transport]:
        sides = (self.client_side, self.target_side)
        return [s.transport for s in sides if s is not None and s.transport is not None]
