"""The WAN emulator, against a tiny echo server on loopback.

Timing assertions are lower bounds (a delay can only add time) with generous upper
bounds, so a slow machine cannot make them flaky. Absence of bytes during a cut is
checked with a short bounded read that must time out.
"""

from __future__ import annotations

import asyncio
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from edgefed.wan import AsyncWanLink, LinkProfile, Wan, WanLink, parse_target

QUIET = 0.3  # seconds a stalled connection must stay silent
BOUND = 5.0  # seconds before a read that should succeed counts as a failure


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            while data := self.request.recv(65536):
                self.request.sendall(data)
        except ConnectionResetError:
            pass  # the link reset us: the tests that do it expect it


class EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo() -> Iterator[tuple[str, int]]:
    server = EchoServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="echo-server", daemon=True
    )
    thread.start()
    try:
        yield server.server_address[0], server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(BOUND)


def connect(link: WanLink) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", link.port), timeout=BOUND)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock: socket.socket, size: int, timeout: float = BOUND) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def round_trip(sock: socket.socket, payload: bytes = b"ping") -> float:
    started = time.monotonic()
    sock.sendall(payload)
    assert recv_exactly(sock, len(payload)) == payload
    return time.monotonic() - started


def assert_silent(sock: socket.socket) -> None:
    sock.settimeout(QUIET)
    with pytest.raises(TimeoutError):
        sock.recv(1)


def assert_closed(sock: socket.socket) -> None:
    sock.settimeout(BOUND)
    try:
        assert sock.recv(1) == b""
    except ConnectionResetError:
        pass


def test_round_trip_time_is_added_and_a_new_connection_pays_the_handshake(
    echo: tuple[str, int],
) -> None:
    with WanLink(echo, profile=LinkProfile(rtt_ms=100)) as link, connect(link) as sock:
        times = [round_trip(sock) for _ in range(3)]
    assert times[0] >= 0.195  # handshake RTT + request RTT
    assert min(times[1:]) >= 0.095
    assert max(times) < 2.0


def test_handshake_cost_can_be_turned_off(echo: tuple[str, int]) -> None:
    profile = LinkProfile(rtt_ms=300, handshake=False)
    with WanLink(echo, profile=profile) as link, connect(link) as sock:
        first = round_trip(sock)
    assert 0.295 <= first < 0.55  # one RTT, not two


def test_rtt_can_change_while_running(echo: tuple[str, int]) -> None:
    with WanLink(echo) as link, connect(link) as sock:
        assert round_trip(sock) < 0.5
        link.update(rtt_ms=150)
        assert link.profile.rtt_ms == 150
        assert round_trip(sock) >= 0.145


def test_bandwidth_limits_throughput_and_keeps_every_byte(echo: tuple[str, int]) -> None:
    rate = 512 * 1024
    payload = bytes(range(256)) * (192 * 4)  # 192 KiB
    with WanLink(echo, profile=LinkProfile(bandwidth=rate)) as link, connect(link) as sock:
        started = time.monotonic()
        sender = threading.Thread(target=sock.sendall, args=(payload,))
        sender.start()
        received = recv_exactly(sock, len(payload))
        elapsed = time.monotonic() - started
        sender.join(BOUND)
        stats = link.stats
    assert received == payload
    assert elapsed >= (len(payload) - 16 * 1024) / rate * 0.95
    assert elapsed < 5.0
    assert stats.bytes_up == stats.bytes_down == len(payload)


def test_a_target_that_does_not_read_pushes_back_on_the_sender() -> None:
    """The link buffers a bounded amount: a sender to a stuck target blocks, and every
    byte arrives, in order, once the target reads again."""
    listener = socket.create_server(("127.0.0.1", 0))
    total = 64 * 1024 * 1024
    payload = bytes(range(256)) * (total // 256)
    sent = 0
    with listener, WanLink(listener.getsockname()) as link, connect(link) as sock:
        target, _ = listener.accept()
        with target:
            sock.settimeout(0.5)
            view = memoryview(payload)
            with pytest.raises(TimeoutError):  # blocked: nobody reads at the other end
                while sent < total:
                    sent += sock.send(view[sent : sent + 1024 * 1024])
            # Socket buffers on both hops plus the link's own bound, not all of it.
            assert sent < total // 2
            sock.settimeout(BOUND)
            sender = threading.Thread(target=sock.sendall, args=(view[sent:],))
            sender.start()
            received = recv_exactly(target, total, timeout=30)
            sender.join(BOUND)
    assert received == payload


def test_cut_stalls_then_heal_resumes_without_loss_or_reordering(echo: tuple[str, int]) -> None:
    with WanLink(echo, profile=LinkProfile(rtt_ms=10)) as link, connect(link) as sock:
        round_trip(sock)
        link.cut()
        assert link.cut_mode == "stall"
        sock.sendall(b"during-the-cut-1;")
        sock.sendall(b"during-the-cut-2;")
        assert_silent(sock)
        with connect(link) as newcomer:  # accepted, but blackholed
            newcomer.sendall(b"hello")
            assert_silent(newcomer)
            link.heal()
            assert recv_exactly(newcomer, 5) == b"hello"
        assert recv_exactly(sock, 34) == b"during-the-cut-1;during-the-cut-2;"
        assert round_trip(sock, b"after") < 1.5


def test_reset_cut_closes_connections_until_healed(echo: tuple[str, int]) -> None:
    with WanLink(echo) as link:
        with connect(link) as sock:
            round_trip(sock)
            link.cut(mode="reset")
            assert_closed(sock)
        assert_turned_away(link)
        link.heal()
        with connect(link) as sock:
            assert round_trip(sock) < 1.5


def test_half_close_is_forwarded(echo: tuple[str, int]) -> None:
    with WanLink(echo, profile=LinkProfile(rtt_ms=20)) as link, connect(link) as sock:
        sock.sendall(b"last words")
        sock.shutdown(socket.SHUT_WR)
        assert recv_exactly(sock, 64) == b"last words"  # then EOF


def test_unreachable_target_closes_the_client() -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        dead_port = placeholder.getsockname()[1]
    with WanLink(("127.0.0.1", dead_port)) as link:
        assert_turned_away(link)


def assert_turned_away(link: WanLink) -> None:
    """The link resets a new connection: at connect (RST raced the handshake) or just after."""
    try:
        sock = connect(link)
    except ConnectionResetError:
        return
    with sock:
        assert_closed(sock)


def wan_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("edgefed-wan")]


def test_stop_leaves_no_thread_running(echo: tuple[str, int]) -> None:
    before = wan_threads()
    link = WanLink(echo).start()
    wan = Wan().start()
    wan.add_link(server="Denver", target=echo)
    sock = connect(link)
    round_trip(sock)
    assert len(wan_threads()) == len(before) + 2
    link.stop()
    wan.stop()
    assert wan_threads() == before
    assert_closed(sock)
    sock.close()


def test_wan_cuts_a_whole_site_and_heals_only_what_nothing_else_cuts(
    echo: tuple[str, int],
) -> None:
    with Wan() as wan:
        berlin_denver = wan.add_link(client="Berlin", server="Denver", target=echo)
        paris_denver = wan.add_link(client="Paris", server="Denver", target=echo)
        berlin_paris = wan.add_link(client="Berlin", server="Paris", target=echo)
        anyone_lyon = wan.add_link(server="Lyon", target=f"http://127.0.0.1:{echo[1]}")
        assert wan.link(client="Berlin", server="Denver") is berlin_denver

        wan.cut_site("Berlin")
        assert [berlin_denver.cut_mode, berlin_paris.cut_mode] == ["stall", "stall"]
        assert paris_denver.cut_mode is None and anyone_lyon.cut_mode is None
        with connect(paris_denver) as sock:
            assert round_trip(sock) < 1.5

        wan.cut_site("Denver", mode="reset")
        wan.heal_site("Berlin")
        assert berlin_paris.cut_mode is None
        assert berlin_denver.cut_mode == "reset"  # Denver is still cut
        assert paris_denver.cut_mode == "reset"

        wan.cut_link(server="Lyon")
        assert anyone_lyon.cut_mode == "stall"
        wan.heal_all()
        assert all(link.cut_mode is None for link in wan.links().values())
        with connect(berlin_denver) as sock:
            assert round_trip(sock) < 1.5


def test_a_link_listens_where_it_is_told_and_streams_at_its_bandwidth(
    echo: tuple[str, int],
) -> None:
    """A link in front of a port: the target's own port number on another loopback
    address. Bulk bytes cross it at the bandwidth cap, the delay paid once, not per
    chunk (the link buffers more than the bandwidth-delay product)."""
    rate, rtt = 4 * 1024 * 1024, 100.0
    payload = bytes(range(256)) * 4096  # 1 MiB
    profile = LinkProfile(rtt_ms=rtt, bandwidth=rate)
    with Wan() as wan:
        link = wan.add_link(server="Paris:nbd", target=echo, profile=profile,
                            listen_host="127.0.0.2", listen_port=echo[1])  # fmt: skip
        assert (link.port, link.url) == (echo[1], f"http://127.0.0.2:{echo[1]}")
        with socket.create_connection(("127.0.0.2", echo[1]), timeout=BOUND) as sock:
            round_trip(sock)  # the handshake's RTT, paid
            started = time.monotonic()
            sender = threading.Thread(target=sock.sendall, args=(payload,))
            sender.start()
            received = recv_exactly(sock, len(payload))
            elapsed = time.monotonic() - started
            sender.join(BOUND)
    assert received == payload
    assert elapsed >= (len(payload) - 16 * 1024) / rate * 0.95 + rtt / 1000 * 0.95
    assert elapsed < 3.0  # one RTT per 16 KiB chunk would take 6.4 s
    with pytest.raises(OSError):  # stopped: nothing listens there any more
        socket.create_connection(("127.0.0.2", echo[1]), timeout=BOUND).close()


class _Hello(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"hello"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_http_client_times_out_during_a_cut_and_recovers_after_heal() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        with (
            WanLink(
                ("127.0.0.1", server.server_address[1]), profile=LinkProfile(rtt_ms=20)
            ) as link,
            httpx.Client(base_url=link.url, timeout=BOUND) as client,
        ):
            assert client.get("/").text == "hello"
            link.cut()
            with pytest.raises(httpx.TimeoutException):
                client.get("/", timeout=QUIET)
            link.heal()
            assert client.get("/").text == "hello"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(BOUND)


def test_parse_target() -> None:
    assert parse_target("http://127.0.0.1:5001/identity") == ("127.0.0.1", 5001)
    assert parse_target(("localhost", 80)) == ("localhost", 80)
    with pytest.raises(ValueError, match="needs a host and a port"):
        parse_target("http://127.0.0.1")


def test_profile_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        LinkProfile(loss=1.5)
    with pytest.raises(ValueError):
        LinkProfile(bandwidth=0)
    with pytest.raises(ValueError):
        LinkProfile(rtt_ms=-1)


# --- the asyncio-native link --------------------------------------------------------------


async def _echo_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


async def test_async_link_adds_delay_and_loss_keeps_order() -> None:
    server = await asyncio.start_server(_echo_handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        profile = LinkProfile(rtt_ms=40, loss=1.0, rto_ms=50)
        async with AsyncWanLink(("127.0.0.1", port), profile=profile, seed=7) as link:
            reader, writer = await asyncio.open_connection("127.0.0.1", link.port)
            loop = asyncio.get_running_loop()
            started = loop.time()
            writer.write(b"x")
            assert await asyncio.wait_for(reader.readexactly(1), BOUND) == b"x"
            # 40 ms of RTT plus one RTO of "retransmission" each way
            assert loop.time() - started >= 0.04 + 2 * 0.05 - 0.005

            link.update(loss=0.5, rtt_ms=0, rto_ms=20)
            payload = b"".join(i.to_bytes(4, "big") for i in range(20000))
            writer.write(payload)
            echoed = await asyncio.wait_for(reader.readexactly(len(payload)), BOUND)
            assert echoed == payload
            writer.close()
            await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()


async def test_async_link_stop_ends_its_tasks() -> None:
    server = await asyncio.start_server(_echo_handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    before = asyncio.all_tasks()
    link = await AsyncWanLink(("127.0.0.1", port)).start()
    reader, writer = await asyncio.open_connection("127.0.0.1", link.port)
    writer.write(b"ping")
    assert await asyncio.wait_for(reader.readexactly(4), BOUND) == b"ping"
    link.cut()
    await link.stop()
    link_tasks = [
        t
        for t in asyncio.all_tasks() - before
        if t.get_coro().__qualname__.split(".")[0] in ("AsyncWanLink", "_Connection")
    ]
    assert link_tasks == []
    assert await asyncio.wait_for(reader.read(1), BOUND) == b""
    writer.close()
    server.close()
    await server.wait_closed()
