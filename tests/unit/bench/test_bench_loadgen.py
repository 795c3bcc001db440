"""The load generator counts what the server saw: successes, errors and connections.

A tiny HTTP/1.1 server runs on loopback in a thread and counts the requests it
answered; the generator's figures must match it exactly.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from bench.loadgen import LoadSpec, drive, run_load


@dataclass
class TinyServer:
    """Answers every request; ``fail_every`` > 0 makes every n-th answer a 503."""

    close_after_each: bool = False
    fail_every: int = 0
    chunked: bool = False
    answered: int = 0
    connections: int = 0
    port: int = 0
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.decode().split("\r\n"):
                    if line.lower().startswith("content-length:"):
                        length = int(line.split(":")[1])
                if length:
                    await reader.readexactly(length)
                self.answered += 1
                failing = self.fail_every and self.answered % self.fail_every == 0
                status = "503 Service Unavailable" if failing else "201 Created"
                close = "Connection: close\r\n" if self.close_after_each else ""
                if self.chunked:
                    body = b"5\r\nhello\r\n0\r\n\r\n"
                    framing = "Transfer-Encoding: chunked\r\n"
                else:
                    body = b'{"ok": true}'
                    framing = f"Content-Length: {len(body)}\r\n"
                writer.write(f"HTTP/1.1 {status}\r\n{framing}{close}\r\n".encode() + body)
                await writer.drain()
                if self.close_after_each:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def serve_in_thread(self) -> threading.Thread:
        started = threading.Event()

        async def main() -> None:
            server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
            self.port = server.sockets[0].getsockname()[1]
            started.set()
            async with server:
                await server.serve_forever()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(main())
            except asyncio.CancelledError:
                pass

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        assert started.wait(5), "tiny server did not start"
        return thread

    def stop(self, thread: threading.Thread) -> None:
        def cancel_all() -> None:
            for task in asyncio.all_tasks(self._loop):
                task.cancel()

        self._loop.call_soon_threadsafe(cancel_all)
        thread.join(5)


@pytest.fixture
def tiny() -> Iterator[TinyServer]:
    server = TinyServer()
    thread = server.serve_in_thread()
    yield server
    server.stop(thread)


def spec(server: TinyServer, **overrides: object) -> LoadSpec:
    values: dict[str, object] = {
        "url": f"http://127.0.0.1:{server.port}/v3/auth/tokens",
        "method": "POST",
        "body": '{"auth": {}}',
        "headers": {"Content-Type": "application/json"},
        "connections": 4,
        "duration_s": 5.0,
        "warmup_s": 0.0,
        "max_requests": 400,
    }
    values.update(overrides)
    return LoadSpec(**values)  # type: ignore[arg-type]


def test_counts_every_answer_on_keep_alive_connections(tiny: TinyServer) -> None:
    result = drive(spec(tiny))

    assert result.ok == result.requests == tiny.answered == 400
    assert result.errors == 0
    assert result.connects == tiny.connections == 4
    assert result.rps > 0 and 0 < result.p50_ms <= result.p99_ms


def test_non_success_statuses_are_errors_not_successes(tiny: TinyServer) -> None:
    tiny.fail_every = 4

    result = drive(spec(tiny))

    assert result.requests == tiny.answered == 400
    assert result.errors == 100 and result.error_kinds == {"http 503": 100}
    assert result.ok == 300


def test_server_that_closes_gets_a_new_connection_per_request(tiny: TinyServer) -> None:
    tiny.close_after_each = True

    result = drive(spec(tiny, max_requests=200))

    assert result.ok == tiny.answered == 200
    # a connection opened just as the cap was reached may close without a request
    assert result.connects == tiny.connections >= 200


def test_chunked_responses_are_read_to_the_end(tiny: TinyServer) -> None:
    tiny.chunked = True

    result = drive(spec(tiny, method="GET", body="", max_requests=100))

    assert result.ok == tiny.answered == 100 and result.errors == 0


def test_warm_up_requests_are_not_counted(tiny: TinyServer) -> None:
    # A second of warm-up: with 0.3 s, a starved test worker (the PostgreSQL pass runs
    # three at once) sometimes answered nothing before measuring began.
    result = drive(spec(tiny, warmup_s=1.0, duration_s=0.3, max_requests=1_000_000))

    assert tiny.answered > result.requests > 0


def test_run_load_drives_from_its_own_process(tiny: TinyServer) -> None:
    result = run_load(spec(tiny, max_requests=200))

    assert result.ok == tiny.answered == 200 and result.errors == 0
