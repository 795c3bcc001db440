"""The scope language: which site serves each service of a request.

A request may carry ``X-Scope: {compute: Berlin|Denver, image: @region=eu}``. This
module turns that text into an immutable syntax tree (scope_tree.py), once; a tree
prints back in a canonical form that parses to the same tree. It knows nothing about
the fleet: resolving names to sites is ``scope_resolve``'s job, running calls is
``scope_eval``'s. The tree's names are importable from here too: this is the
language's front door.

Grammar (``&`` binds tighter than ``|``; whitespace is free between tokens)::

    scope := '{' entry (',' entry)* '}'
    entry := service ':' expr
    expr  := both ('|' both)*                 Alt: fall back left to right
    both  := atom ('&' atom)*                 Both: all of them, in parallel
    atom  := SITE | '*' | '@' key '=' value
           | 'around(' SITE ',' N 'ms)' | '(' expr ')'

Why a hand-written parser: every error must point at the offending character of the
header, with a message a user can act on, and a bad header must never become a 500.
The parser is a recursive descent over tokens with a bounded length and nesting depth,
so no input (however hostile) raises anything but ``ScopeSyntaxError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, NoReturn

from edgefed.core.scope_tree import (
    LABEL_KEY_RE,
    LABEL_VALUE_RE,
    MAX_NESTING,
    MAX_RTT_MS,
    MAX_SCOPE_LENGTH,
    SERVICE_ALIASES,
    SERVICES,
    AllSites,
    Alt,
    Around,
    Both,
    Expr,
    Label,
    Scope,
    ScopeSyntaxError,
    Site,
    canonical_service,
    format_ms,
)
from edgefed.core.settings import SITE_NAME_RE

__all__ = [
    "LABEL_KEY_RE",
    "LABEL_VALUE_RE",
    "MAX_NESTING",
    "MAX_RTT_MS",
    "MAX_SCOPE_LENGTH",
    "SERVICES",
    "SERVICE_ALIASES",
    "AllSites",
    "Alt",
    "Around",
    "Both",
    "Expr",
    "Label",
    "Scope",
    "ScopeSyntaxError",
    "Site",
    "canonical_service",
    "format_ms",
    "parse_expr",
    "parse_scope",
]

_RTT_RE: Final = re.compile(r"^(\d+(?:\.\d+)?)(ms)?$")
_WORD_RE: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")
_PUNCT: Final = frozenset("{},:|&()*@=")
_ATOM_START: Final = "a site, '*', '@key=value', 'around(SITE, N ms)' or '('"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # a punctuation character, "word", or "end"
    text: str
    pos: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in " \t\r\n":
            i += 1
        elif ch in _PUNCT:
            tokens.append(_Token(ch, ch, i))
            i += 1
        elif match := _WORD_RE.match(text, i):
            tokens.append(_Token("word", match.group(), i))
            i = match.end()
        else:
            raise ScopeSyntaxError(scope=text, position=i, reason=f"unexpected {ch!r}")
    tokens.append(_Token("end", "", n))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        if len(text) > MAX_SCOPE_LENGTH:
            raise ScopeSyntaxError(
                scope=text[:80] + "...",
                position=0,
                reason=f"scope is {len(text)} characters long, more than {MAX_SCOPE_LENGTH}",
            )
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0

    # helpers
    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def fail(self, token: _Token, *, expected: str | None, reason: str | None = None) -> NoReturn:
        if reason is None:
            reason = (
                "unexpected end of scope" if token.kind == "end" else f"unexpected {token.text!r}"
            )
        raise ScopeSyntaxError(
            scope=self.text, position=token.pos, reason=reason, expected=expected
        )

    def expect(self, kind: str, *, expected: str) -> _Token:
        token = self.current
        if token.kind != kind:
            self.fail(token, expected=expected)
        self.index += 1
        return token

    # grammar
    def scope(self) -> Scope:
        if self.current.kind == "end":
            self.fail(self.current, expected="'{'", reason="empty scope")
        self.expect("{", expected="'{' to open the scope")
        entries: dict[str, Expr] = {}
        while True:
            token = self.expect("word", expected="a service name such as 'compute'")
            service = canonical_service(token.text)
            if service is None:
                known = ", ".join(SERVICES + tuple(SERVICE_ALIASES))
                self.fail(
                    token, expected=f"one of {known}", reason=f"unknown service {token.text!r}"
                )
            if service in entries:
                alias = (
                    "" if token.text.lower() == service else f" ({token.text} is an alias of it)"
                )
                self.fail(token, expected=None, reason=f"duplicate entry for {service}{alias}")
            self.expect(":", expected=f"':' after {token.text!r}")
            entries[service] = self.alt()
            if self.current.kind == ",":
                self.index += 1
                continue
            self.expect("}", expected="'|', '&', ',' or '}'")
            break
        self.expect("end", expected="nothing after the closing '}'")
        return Scope(entries)

    def expression(self) -> Expr:
        expr = self.alt()
        self.expect("end", expected="'|', '&' or the end of the expression")
        return expr

    def alt(self) -> Expr:
        options = [self.both()]
        while self.current.kind == "|":
            self.index += 1
            options.append(self.both())
        return options[0] if len(options) == 1 else Alt(tuple(options))

    def both(self) -> Expr:
        parts = [self.atom()]
        while self.current.kind == "&":
            self.index += 1
            parts.append(self.atom())
        return parts[0] if len(parts) == 1 else Both(tuple(parts))

    def atom(self) -> Expr:
        token = self.current
        if token.kind == "*":
            self.index += 1
            return AllSites()
        if token.kind == "@":
            self.index += 1
            return self.label()
        if token.kind == "(":
            if self.depth >= MAX_NESTING:
                self.fail(token, expected=None, reason=f"nesting deeper than {MAX_NESTING}")
            self.index += 1
            self.depth += 1
            inner = self.alt()
            self.depth -= 1
            self.expect(")", expected="')' or an operator '|' or '&'")
            return inner
        if token.kind == "word":
            if token.text == "around" and self.tokens[self.index + 1].kind == "(":
                self.index += 2
                return self.around()
            self.index += 1
            return Site(self.site_name(token))
        self.fail(token, expected=_ATOM_START)

    def site_name(self, token: _Token) -> str:
        if not SITE_NAME_RE.match(token.text):
            self.fail(
                token,
                reason=f"invalid site name {token.text!r}",
                expected="a site name: a letter, then at most 62 letters, digits, '.', '_' or '-'",
            )
        return token.text

    def label(self) -> Label:
        key = self.expect("word", expected="a label key after '@', as in @region=eu")
        self.expect("=", expected=f"'=' after the label key {key.text!r}")
        value = self.expect("word", expected=f"a value for the label {key.text!r}")
        for part in (key, value):
            if not LABEL_KEY_RE.match(part.text):
                self.fail(part, expected=None, reason=f"label part {part.text!r} is too long")
        return Label(key.text, value.text)

    def around(self) -> Around:
        site = self.site_name(self.expect("word", expected="a site name in around(SITE, N ms)"))
        self.expect(",", expected=f"',' after {site!r} in around(SITE, N ms)")
        number = self.expect("word", expected="a round-trip time such as 20ms")
        match = _RTT_RE.match(number.text)
        if match is None:
            self.fail(number, expected="a round-trip time such as 20ms")
        if match.group(2) is None:  # "20 ms" with a space: the unit is its own word
            unit = self.current
            if unit.kind != "word" or unit.text != "ms":
                self.fail(unit, expected=f"'ms' after {number.text}")
            self.index += 1
        value = float(match.group(1))
        if value > MAX_RTT_MS:
            self.fail(number, expected=None, reason=f"round-trip time {number.text} is too large")
        self.expect(")", expected="')' to close around(...)")
        return Around(site, value)


def parse_scope(text: str) -> Scope:
    """Parse an ``X-Scope`` value such as ``{compute: Berlin|Denver}``."""
    return _Parser(text).scope()


def parse_expr(text: str) -> Expr:
    """Parse a bare expression such as ``@region=eu&Berlin`` (site selection elsewhere)."""
    return _Parser(text).expression()
