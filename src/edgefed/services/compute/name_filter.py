"""Nova's ``name`` filter of server lists, a regular expression from the client, matched
in linear time.

Python's ``re`` backtracks: a pattern such as ``(a+)+$`` takes exponential time on a
name of a few dozen ``a``, and ``.*.*.*x`` polynomial time, all of it on the event loop.
So a client's pattern never reaches ``re``'s matcher. It is parsed by ``re``'s own parser
(the same syntax and errors) into a Thompson automaton that is simulated state set by
state set, each set computed once and remembered (a lazily built DFA, as RE2 does): a
name costs one step per character, whatever the pattern.

Supported: literals, ``.``, classes (ranges, negation, ``\\d \\w \\s``), groups,
alternation, ``* + ? {m,n}`` (greedy, lazy or possessive alike: only whether a name
matches counts), ``^`` and ``$``. Anything that needs backtracking (back-references,
look-arounds) or changes matching (inline flags) is a 400 that says so, and so is a
pattern longer than ``MAX_PATTERN`` or one that expands into more than ``MAX_STATES``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

from edgefed.core.errors import BadRequest

# re's own parser (the syntax and errors of re); typeshed does not describe it.
sre_parse: Any = importlib.import_module("re._parser")
sre: Any = importlib.import_module("re._constants")

MAX_PATTERN = 255
MAX_STATES = 4096
MAX_REMEMBERED = 10_000

Test = Callable[[str], bool]
_CATEGORIES: dict[Any, Test] = {
    sre.CATEGORY_DIGIT: str.isdecimal,
    sre.CATEGORY_NOT_DIGIT: lambda c: not c.isdecimal(),
    sre.CATEGORY_SPACE: str.isspace,
    sre.CATEGORY_NOT_SPACE: lambda c: not c.isspace(),
    sre.CATEGORY_WORD: lambda c: c.isalnum() or c == "_",
    sre.CATEGORY_NOT_WORD: lambda c: not (c.isalnum() or c == "_"),
}
_BOL, _EOL, _EOS = 1, 2, 4
_ANCHORS = {"bol": _BOL, "eol": _EOL, "eos": _EOS}
_REPEATS = {sre.MAX_REPEAT, sre.MIN_REPEAT, getattr(sre, "POSSESSIVE_REPEAT", sre.MAX_REPEAT)}


def _invalid(pattern: str, why: str) -> BadRequest:
    return BadRequest(f"Invalid filter field: name. {pattern[:80]!r}: {why}")


def _equal(x: str) -> Test:
    return lambda c: c == x


def _other(x: str) -> Test:
    return lambda c: c != x


def _between(lo: int, hi: int) -> Test:
    return lambda c: lo <= ord(c) <= hi


def _class(items: list[tuple[Any, Any]], pattern: str) -> Test:
    negate = False
    tests: list[Test] = []
    for op, arg in items:
        if op is sre.NEGATE:
            negate = True
        elif op is sre.LITERAL:
            tests.append(_equal(chr(arg)))
        elif op is sre.RANGE:
            tests.append(_between(arg[0], arg[1]))
        elif op is sre.CATEGORY and arg in _CATEGORIES:
            tests.append(_CATEGORIES[arg])
        else:
            raise _invalid(pattern, f"{op} is not supported in a character class")
    if negate:
        return lambda c: not any(t(c) for t in tests)
    return lambda c: any(t(c) for t in tests)


class NameFilter:
    """``NameFilter(pattern).search(name)`` is ``re.search(pattern, name) is not None``
    for the supported syntax, in time linear in ``len(name)``."""

    def __init__(self, pattern: str):
        if len(pattern) > MAX_PATTERN:
            raise _invalid(pattern, f"the pattern is longer than {MAX_PATTERN} characters")
        try:
            parsed = sre_parse.parse(pattern)
        except re.error as exc:
            raise _invalid(pattern, str(exc)) from exc
        if parsed.state.flags & ~sre.SRE_FLAG_UNICODE:
            raise _invalid(pattern, "inline flags are not supported")
        self.pattern = pattern
        # ("char", test, next) | ("split", [next, ...]) | ("bol"|"eol"|"eos", next) | ("match",)
        self.states: list[tuple[Any, ...]] = [("match",)]
        self.start = self._sequence(list(parsed), 0)
        self._closures: dict[tuple[frozenset[int], int], frozenset[int]] = {}
        self._steps: dict[tuple[frozenset[int], str], frozenset[int]] = {}

    # -- building (backwards: each piece is built knowing the state that follows it) --------

    def _new(self, state: tuple[Any, ...]) -> int:
        if len(self.states) >= MAX_STATES:
            raise _invalid(self.pattern, f"the pattern expands to more than {MAX_STATES} states")
        self.states.append(state)
        return len(self.states) - 1

    def _sequence(self, items: list[tuple[Any, Any]], nxt: int) -> int:
        for item in reversed(items):
            nxt = self._item(item, nxt)
        return nxt

    def _item(self, item: tuple[Any, Any], nxt: int) -> int:
        op, arg = item
        if op is sre.LITERAL:
            return self._new(("char", _equal(chr(arg)), nxt))
        if op is sre.NOT_LITERAL:
            return self._new(("char", _other(chr(arg)), nxt))
        if op is sre.ANY:
            return self._new(("char", _other("\n"), nxt))
        if op is sre.IN:
            return self._new(("char", _class(arg, self.pattern), nxt))
        if op is sre.SUBPATTERN:
            _group, add_flags, del_flags, items = arg
            if add_flags or del_flags:
                raise _invalid(self.pattern, "inline flags are not supported")
            return self._sequence(list(items), nxt)
        if op is sre.BRANCH:
            return self._new(("split", [self._sequence(list(alt), nxt) for alt in arg[1]]))
        if op in _REPEATS:
            low, high, items = arg
            return self._repeat(low, high, items, nxt)
        if op is sre.AT and arg in (sre.AT_BEGINNING, sre.AT_BEGINNING_STRING):
            return self._new(("bol", nxt))
        if op is sre.AT and arg is sre.AT_END:  # $: the end, or before a final newline
            return self._new(("eol", nxt))
        if op is sre.AT and arg is sre.AT_END_STRING:  # \Z: the very end
            return self._new(("eos", nxt))
        raise _invalid(self.pattern, f"{str(op).lower()} is not supported (no backtracking)")

    def _repeat(self, low: int, high: Any, items: Any, nxt: int) -> int:
        body = list(items)
        if high is sre.MAXREPEAT:
            loop = self._new(("split", []))
            self.states[loop] = ("split", [self._sequence(body, loop), nxt])
            nxt = loop
        else:
            for _ in range(high - low):
                nxt = self._new(("split", [self._sequence(body, nxt), nxt]))
        for _ in range(low):
            nxt = self._sequence(body, nxt)
        return nxt

    # -- matching ------------------------------------------------------------------------

    def _closure(self, states: frozenset[int], where: int) -> frozenset[int]:
        """The states reachable without reading; ``where`` holds AT_* bits for the position."""
        key = (states, where)
        found = self._closures.get(key)
        if found is not None:
            return found
        seen: set[int] = set()
        todo = list(states)
        while todo:
            index = todo.pop()
            if index in seen:
                continue
            seen.add(index)
            state = self.states[index]
            kind = state[0]
            if kind == "split":
                todo.extend(state[1])
            elif kind in _ANCHORS and where & _ANCHORS[kind]:
                todo.append(state[1])
        result = frozenset(i for i in seen if self.states[i][0] in ("char", "match"))
        self._remember(self._closures, key, result)
        return result

    def _remember(self, memo: dict[Any, frozenset[int]], key: Any, value: frozenset[int]) -> None:
        if len(memo) >= MAX_REMEMBERED:  # bounded memory; the next steps rebuild what they need
            memo.clear()
        memo[key] = value

    def search(self, text: str) -> bool:
        n = len(text)
        eol_at = n - 1 if text.endswith("\n") else n

        def where(pos: int) -> int:
            bits = _BOL if pos == 0 else 0
            if pos == n:
                bits |= _EOL | _EOS
            elif pos == eol_at:
                bits |= _EOL
            return bits

        start = frozenset((self.start,))
        current = self._closure(start, where(0))
        if 0 in current:
            return True
        for i, ch in enumerate(text):
            step_key = (current, ch)
            moved = self._steps.get(step_key)
            if moved is None:
                chars = (self.states[j] for j in current)
                moved = frozenset(s[2] for s in chars if s[0] == "char" and s[1](ch))
                self._remember(self._steps, step_key, moved)
            # A match may also begin at the next position (search, not match).
            current = self._closure(moved | start, where(i + 1))
            if 0 in current:
                return True
        return False
