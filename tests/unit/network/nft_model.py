"""A reader of the nft text ``hostnet.ruleset`` renders, and a packet walked through it.

Tests check the ruleset by its structure (tables, sets, maps, chains and their
rules) and by what it decides for a packet, without a kernel: ``verdict`` follows a
packet through the ``inet`` table's hook chain the way nftables would (vmaps jump,
``return`` comes back, the first ``accept`` or ``drop`` ends it), for the few match
expressions the renderer writes. A renderer change that makes an expression this
reader does not know fails loudly here rather than passing unchecked.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

_SET = re.compile(r"^set (\S+) \{ type ipv4_addr;(?: elements = \{ (.*) \};)? \}$")
_MAP = re.compile(r"^map (\S+) \{ type (\S+) : verdict;(?: elements = \{ (.*) \};)? \}$")


@dataclass
class Table:
    sets: dict[str, list[str]] = field(default_factory=dict)
    maps: dict[str, dict[str, str]] = field(default_factory=dict)
    chains: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Ruleset:
    preamble: list[str]
    tables: dict[tuple[str, str], Table]

    @property
    def sg(self) -> Table:
        return self.tables[("inet", "edgefed_sg")]

    @property
    def spoof(self) -> Table:
        return self.tables[("bridge", "edgefed_spoof")]


def parse(text: str) -> Ruleset:
    preamble: list[str] = []
    tables: dict[tuple[str, str], Table] = {}
    table: Table | None = None
    chain: list[str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if table is None:
            m = re.match(r"^table (\w+) (\w+) \{$", line)
            if m:
                table = tables.setdefault((m[1], m[2]), Table())
            else:
                preamble.append(line)
        elif chain is not None:
            if line == "}":
                chain = None
            else:
                chain.append(line)
        elif line == "}":
            table = None
        elif m := _SET.match(line):
            table.sets[m[1]] = [e.strip() for e in (m[2] or "").split(",") if e.strip()]
        elif m := _MAP.match(line):
            pairs = [e.split(" : ") for e in (m[3] or "").split(", ") if e]
            table.maps[m[1]] = {k.strip().strip('"'): v.strip() for k, v in pairs}
        elif m := re.match(r"^chain (\w+) \{$", line):
            chain = table.chains.setdefault(m[1], [])
        else:
            raise AssertionError(f"unexpected line in table: {line!r}")
    return Ruleset(preamble, tables)


@dataclass(frozen=True)
class Packet:
    saddr: str
    daddr: str
    proto: int = 6
    dport: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None
    ct_state: str = "new"  # or "established"
    sport: int | None = None


def _matches(table: Table, expr: str, packet: Packet) -> bool:
    tokens = expr.split()
    i = 0
    while i < len(tokens):
        word = tokens[i]
        if word == "counter":
            i += 1
        elif word == "ct":
            if packet.ct_state not in tokens[i + 2].split(","):
                return False
            i += 3
        elif word == "ip":
            address = packet.saddr if tokens[i + 1] == "saddr" else packet.daddr
            value = tokens[i + 2]
            if value.startswith("@"):
                if address not in table.sets[value[1:]]:
                    return False
            elif ipaddress.ip_address(address) not in ipaddress.ip_network(value):
                return False
            i += 3
        elif word == "meta" and tokens[i + 1] == "l4proto":
            if packet.proto != int(tokens[i + 2]):
                return False
            i += 3
        elif word == "th" and tokens[i + 1] == "dport":
            low, _, high = tokens[i + 2].partition("-")
            if packet.dport is None or not int(low) <= packet.dport <= int(high or low):
                return False
            i += 3
        elif word == "icmp":
            want = int(tokens[i + 2])
            got = packet.icmp_type if tokens[i + 1] == "type" else packet.icmp_code
            if got != want:
                return False
            i += 3
        elif word == "udp":
            port = packet.sport if tokens[i + 1] == "sport" else packet.dport
            if packet.proto != 17 or port != int(tokens[i + 2]):
                return False
            i += 3
        else:
            raise AssertionError(f"the reader does not know {word!r} in {expr!r}")
    return True


def run_chain(table: Table, name: str, packet: Packet, depth: int = 0) -> str | None:
    """'accept', 'drop', or None when the chain ends (or returns) without a verdict."""
    assert depth < 8, "jump loop"
    for rule in table.chains[name]:
        if rule.startswith("type "):
            continue
        words = rule.split()
        if len(words) == 4 and words[0] == "ip" and words[2] == "vmap":
            address = packet.saddr if words[1] == "saddr" else packet.daddr
            target = table.maps[words[3][1:]].get(address)
            if target is not None:
                verdict = run_chain(table, target.removeprefix("jump "), packet, depth + 1)
                if verdict is not None:
                    return verdict
            continue
        *match, verdict = words
        if _matches(table, " ".join(match), packet):
            if verdict == "return":
                return None
            return verdict
    return None


def verdict(ruleset: Ruleset, hook: str, packet: Packet) -> str:
    """What the inet table decides for ``packet`` at ``hook`` (the policy is accept)."""
    return run_chain(ruleset.sg, hook, packet) or "accept"
