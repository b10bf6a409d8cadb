from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alignguard.spec.formula import BinOp, Call, Const, FormulaSyntaxError, Neg, Symbol, parse_equation


def test_design_equation_parses_to_a_tree():
    eq = parse_equation("logit = (M * U_I + B) / T")
    assert eq.lhs == "logit"
    assert eq.rhs == BinOp("div", BinOp("add", BinOp("mul", Symbol("M"), Symbol("U_I")), Symbol("B")), Symbol("T"))
    assert eq.symbols() == {"logit", "M", "U_I", "B", "T"}


def test_functions_unary_minus_and_constants():
    eq = parse_equation("p = sigmoid(-(U_I - R_E) / 2.5)")
    assert eq.rhs == Call("sigmoid", (BinOp("div", Neg(BinOp("sub", Symbol("U_I"), Symbol("R_E"))), Const(2.5)),))


def test_never_evaluates_code():
    with pytest.raises(FormulaSyntaxError):
        parse_equation("y = (lambda: 1)()")
    with pytest.raises(FormulaSyntaxError):
        parse_equation("y = x.__class__")


names = st.sampled_from(["M", "U_I", "B", "T", "z"])


def expressions():
    return st.recursive(
        names.map(Symbol),
        lambda inner: st.one_of(
            st.tuples(st.sampled_from(["add", "sub", "mul", "div"]), inner, inner).map(lambda t: BinOp(*t)),
            inner.map(Neg),
            inner.map(lambda e: Call("exp", (e,))),
        ),
        max_leaves=8,
    )


def to_text(expr) -> str:
    if isinstance(expr, Symbol):
        return expr.name
    if isinstance(expr, Neg):
        return f"(-{to_text(expr.operand)})"
    if isinstance(expr, Call):
        return f"{expr.func}({', '.join(map(to_text, expr.args))})"
    sign = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[expr.op]
    return f"({to_text(expr.left)} {sign} {to_text(expr.right)})"


@given(expressions())
def test_parse_inverts_printing(expr):
    assert parse_equation(f"y = {to_text(expr)}").rhs == expr
