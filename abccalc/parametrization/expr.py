"""A small whitelisted expression grammar for the rules users write (``1/sqrt(fan_in)``),
parsed by recursive descent straight into sympy; nothing is evaluated as Python.

::

    expr   := term (("+" | "-") term)*
    term   := unary (("*" | "/") unary)*
    unary  := "-" unary | power
    power  := atom (("**" | "^") unary)?          # right-associative, binds tightest
    atom   := NUMBER | NAME | "sqrt" "(" expr ")" | "(" expr ")"
    NUMBER := digits, optionally with a decimal point and an exponent e±k, |k| ≤ 300
              (exact: 0.02 is 1/50, 3e-4 is 3/10000)

A NAME must be one of the names the caller allows. Limits keep every input fast:
at most :data:`MAX_TOKENS` tokens, :data:`MAX_DEPTH` nested parentheses or powers,
:data:`MAX_DIGITS` digits in a number, an exponent that is a number with
``|p| ≤`` :data:`MAX_EXPONENT`, and numeric powers below :data:`MAX_BITS` bits.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from fractions import Fraction

import sympy

from abccalc.errors import AbcError

MAX_TOKENS = 200
MAX_DEPTH = 32
MAX_DIGITS = 40
MAX_EXPONENT = 64
MAX_BITS = 4096
_TOKEN = re.compile(r"\s*(?:((?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"  # a number
                    r"|([A-Za-z_][A-Za-z0-9_]*)|(\*\*|[-+*/^()]))")  # a name, an operator


class _Parser:
    def __init__(self, text: str, names: Mapping[str, sympy.Expr], fail) -> None:
        self.names, self.fail = names, fail
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise fail(f"unexpected character {text[pos:].lstrip()[:1]!r}")
            kind = "num" if m.group(1) else "name" if m.group(2) else "op"
            self.tokens.append((kind, m.group(m.lastindex)))
            pos = m.end()
            if len(self.tokens) > MAX_TOKENS:
                raise fail(f"longer than {MAX_TOKENS} tokens")
        self.i = 0
        self.depth = 0

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        if self.i >= len(self.tokens):
            raise self.fail("unexpected end")
        self.i += 1
        return self.tokens[self.i - 1]

    def expect(self, tok: str) -> None:
        if self.peek() != tok:
            raise self.fail(f"expected '{tok}'")
        self.i += 1

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"nested deeper than {MAX_DEPTH}")

    def parse(self) -> sympy.Expr:
        if not self.tokens:
            raise self.fail("empty")
        e = self.expr()
        if self.i != len(self.tokens):
            raise self.fail(f"unexpected '{self.peek()}'")
        return e

    def expr(self) -> sympy.Expr:
        e = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()[1]
            rhs = self.term()
            e = e + rhs if op == "+" else e - rhs
        return e

    def term(self) -> sympy.Expr:
        e = self.unary()
        while self.peek() in ("*", "/"):
            op = self.take()[1]
            rhs = self.unary()
            if op == "/" and rhs == 0:
                raise self.fail("division by zero")
            e = e * rhs if op == "*" else e / rhs
        return e

    def unary(self) -> sympy.Expr:
        if self.peek() == "-":
            self.take()
            self.nest()
            e = -self.unary()
            self.depth -= 1
            return e
        return self.power()

    def power(self) -> sympy.Expr:
        base = self.atom()
        if self.peek() not in ("**", "^"):
            return base
        self.take()
        self.nest()
        exp = self.unary()
        self.depth -= 1
        if not exp.is_Rational:
            raise self.fail("an exponent must be a number")
        if abs(exp) > MAX_EXPONENT or exp.q > 10**6:
            raise self.fail(f"exponent {exp} is larger than {MAX_EXPONENT}")
        if base == 0 and exp <= 0:
            raise self.fail("division by zero")
        if base.is_Rational and (abs(base.p).bit_length() + base.q.bit_length()) \
                * abs(exp) > MAX_BITS:
            raise self.fail("a number too large")
        return sympy.Pow(base, exp)

    def atom(self) -> sympy.Expr:
        kind, tok = self.take()
        if kind == "num":
            if len(tok) > MAX_DIGITS:
                raise self.fail(f"a number longer than {MAX_DIGITS} characters")
            e10 = tok.lower().partition("e")[2]
            if e10 and abs(int(e10)) > 300:
                raise self.fail(f"a number's exponent {e10} is out of range (±300)")
            return sympy.Rational(Fraction(tok))
        if kind == "name":
            if tok == "sqrt" and "sqrt" not in self.names:
                self.expect("(")
                self.nest()
                e = self.expr()
                self.depth -= 1
                self.expect(")")
                if e.is_number and e.is_negative:
                    raise self.fail("sqrt of a negative number")
                return sympy.sqrt(e)
            if tok not in self.names:
                raise self.fail(f"unknown name '{tok}'", unknown=tok)
            return self.names[tok]
        if tok == "(":
            self.nest()
            e = self.expr()
            self.depth -= 1
            self.expect(")")
            return e
        raise self.fail(f"unexpected '{tok}'")


class ExprError(AbcError):
    """A rule that is not an expression of the grammar; ``unknown`` is the unknown name
    that made it so, if any."""

    def __init__(self, msg: str, unknown: str | None = None) -> None:
        super().__init__(msg)
        self.unknown = unknown


def parse_expr(text: str, names: Mapping[str, sympy.Expr]) -> sympy.Expr:
    """The sympy expression of ``text`` in the grammar above, with ``names`` (name →
    symbol or value) as its only names; :class:`ExprError` says why not."""

    def fail(why: str, unknown: str | None = None) -> ExprError:
        return ExprError(why, unknown)

    if not isinstance(text, str):
        raise ExprError(f"expected text, got {type(text).__name__}")
    if len(text) > 10 * MAX_TOKENS:
        raise ExprError(f"longer than {10 * MAX_TOKENS} characters")
    return _Parser(text, names, fail).parse()
