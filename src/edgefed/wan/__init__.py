"""A WAN emulator in userspace: one TCP proxy per link, with delay, bandwidth, loss and cuts.

The kernel of the test machines has no netem, yet edge sites live behind 10-300 ms
links that drop out. So a test (or ``edgefed up --rtt``, which ships it) puts a link
between a client and a site: it listens on 127.0.0.1, forwards to the site, and shapes
what passes (docs/wan-emulator.md).

A low room: it imports nothing of edgefed outside itself. Inside, one-way doors:

- ``profile``: what a link is (``LinkProfile``, ``LinkStats``, targets, cut modes);
- ``engine``: how bytes cross a link (delay, bandwidth, loss, cuts, flow control);
- ``link``: ``AsyncWanLink``, one link in the running event loop;
- ``control``: ``WanLink`` (one link on a thread of its own, for sync code) and ``Wan``
  (many links on one thread, keyed by (client, server), cutting whole sites).
"""

from edgefed.wan.control import Wan, WanLink, raise_open_files_limit
from edgefed.wan.link import AsyncWanLink
from edgefed.wan.profile import CutMode, LinkProfile, LinkStats, Target, parse_target

__all__ = [
    "AsyncWanLink",
    "CutMode",
    "LinkProfile",
    "LinkStats",
    "Target",
    "Wan",
    "WanLink",
    "parse_target",
    "raise_open_files_limit",
]
