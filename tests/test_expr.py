"""The whitelisted rule grammar (abccalc/parametrization/expr.py): what it reads, exactly,
and what it refuses, quickly, without evaluating anything as Python."""

from __future__ import annotations

import pytest
import sympy

from abccalc.errors import AbcError
from abccalc.parametrization.expr import ExprError, parse_expr

FAN_IN = sympy.Symbol("fan_in", positive=True)
D = sympy.Symbol("d_head", positive=True)
NAMES = {"fan_in": FAN_IN, "d_head": D}


@pytest.mark.parametrize(("text", "want"), [
    ("1/fan_in", 1 / FAN_IN),
    ("1/sqrt(d_head)", D ** sympy.Rational(-1, 2)),
    ("fan_in^-1/2", 1 / (2 * FAN_IN)),            # ^ is **, and binds tighter than /
    ("fan_in**(-1/2)", FAN_IN ** sympy.Rational(-1, 2)),
    ("2**3**2", sympy.Integer(512)),              # right-associative, as Python
    ("-2**2", sympy.Integer(-4)),                 # unary minus binds looser than **
    ("0.02 * fan_in", sympy.Rational(1, 50) * FAN_IN),  # exact decimals
    ("3e-4*64/d_head", sympy.Rational(3 * 64, 10000) / D),
    ("  ( fan_in )  ", FAN_IN),
    ("1/fan_in + 1", 1 / FAN_IN + 1),
])
def test_reads(text: str, want: sympy.Expr) -> None:
    assert sympy.simplify(parse_expr(text, NAMES) - want) == 0


@pytest.mark.parametrize(("text", "why"), [
    ("__import__('os').system('touch MARKER')", "unexpected character"),
    ("fan_in.__class__", "unexpected character"),
    ("exp(fan_in)", "unknown name 'exp'"),
    ("lambda", "unknown name 'lambda'"),
    ("fan_in; 1", "unexpected character ';'"),
    ("2**2**2**2**2**2", "exponent 65536 is larger than 64"),
    ("fan_in**fan_in", "an exponent must be a number"),
    ("(2**64)**64", "a number too large"),
    ("9" * 500, "a number longer than 40"),
    ("9" * 5001, "longer than 2000 characters"),
    ("1e999999", "out of range"),
    ("1/0", "division by zero"),
    ("0**-1", "division by zero"),
    ("(" * 40 + "1" + ")" * 40, "nested deeper than 32"),
    ("1*" * 150 + "1", "longer than 200 tokens"),
    ("", "empty"),
    ("1/(", "unexpected end"),
    ("sqrt(-4)", "sqrt of a negative number"),
], ids=lambda x: x[:30] if isinstance(x, str) else None)
def test_refuses(text: str, why: str) -> None:
    with pytest.raises(ExprError, match=why.replace("(", r"\(").replace("*", r"\*")):
        parse_expr(text, NAMES)


def test_an_expr_error_is_an_abc_error_and_names_the_unknown_name() -> None:
    with pytest.raises(AbcError) as info:
        parse_expr("1/fan_wat", NAMES)
    assert info.value.unknown == "fan_wat"
