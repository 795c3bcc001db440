"""What a link is: its shape (``LinkProfile``), its counters, its target, how it is cut.

Plain values, shared by the engine, the links and the controls; nothing here runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

CutMode = Literal["stall", "reset"]
Target = tuple[str, int] | str


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
