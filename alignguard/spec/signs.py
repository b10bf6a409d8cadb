"""Which symbols the spec needs positive, and where it says so.

A design may rely on a symbol's sign (a temperature divides, a noise scale multiplies ε, a count
is logged) or leave it free (DANN's features carry no sign in the paper). Mutation testing asks
this before it removes the op that keeps a symbol positive: removing it breaks the design only
when the spec states the sign, directly or through a formula position that needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alignguard.spec.formula import BinOp, Call, Const, Expr, Neg, Symbol

if TYPE_CHECKING:
    from alignguard.spec.model import Spec

# Formula positions that need a positive argument: log/sqrt of it, a division by it, a fractional power of it.
_POSITIVE_ARGUMENT = frozenset({"log", "sqrt"})


def sign_reliance(spec: "Spec") -> dict[str, list[str]]:
    """{symbol: the spec lines that rely on its sign (or state the op that makes it positive)}."""
    reasons: dict[str, list[str]] = {}

    def add(symbol: str, why: str) -> None:
        reasons.setdefault(symbol, []).append(why)

    if spec.probes.positivity is not None:
        for symbol in spec.probes.positivity.symbols:
            add(symbol, "`probes.positivity` requires it > 0")
    for rule in spec.ranges:
        if rule.min is not None and rule.min >= 0:
            add(rule.symbol, f"`ranges` bounds it below by {rule.min:g}")
    for name, binding in spec.symbols.items():
        if binding.stochastic is not None and binding.stochastic.scale:
            add(binding.stochastic.scale, f"it is the noise scale of {name} (`symbols.{name}.stochastic.scale`)")
    for formula in spec.formulas:
        equation = formula.parsed
        add(equation.lhs, f"formula `{equation.text}` states how it is computed")
        for symbol, position in _positive_positions(equation.rhs):
            add(symbol, f"formula `{equation.text}` {position}")
    return {symbol: list(dict.fromkeys(why)) for symbol, why in reasons.items()}


def _positive_positions(expr: Expr) -> list[tuple[str, str]]:
    """(symbol, what the formula does with it) for each symbol the expression needs positive: `log(s)`,
    `sqrt(s)`, `x / s`, `s ** 0.5` (a symbol up to a constant scale or shift, e.g. `log(s + 1)`, counts too)."""
    found: list[tuple[str, str]] = []
    if isinstance(expr, Call):
        if expr.func in _POSITIVE_ARGUMENT:
            found += [(s, f"takes the {expr.func} of {s}") for s in _operands(expr.args[0])]
        for arg in expr.args:
            found += _positive_positions(arg)
    elif isinstance(expr, BinOp):
        if expr.op == "div":
            found += [(s, f"divides by {s}") for s in _operands(expr.right)]
        if expr.op == "pow" and isinstance(expr.right, Const) and not float(expr.right.value).is_integer():
            found += [(s, f"raises {s} to a fractional power") for s in _operands(expr.left)]
        found += _positive_positions(expr.left) + _positive_positions(expr.right)
    elif isinstance(expr, Neg):
        found += _positive_positions(expr.operand)
    return found


def _operands(expr: Expr) -> list[str]:
    """The symbol an argument is, up to constant scales and shifts (`T`, `2 * T`, `T + 1e-6`)."""
    if isinstance(expr, Symbol):
        return [expr.name]
    if isinstance(expr, BinOp) and expr.op in ("add", "mul"):
        if isinstance(expr.left, Const):
            return _operands(expr.right)
        if isinstance(expr.right, Const):
            return _operands(expr.left)
    return []
