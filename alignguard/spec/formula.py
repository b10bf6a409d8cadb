"""Design equations such as ``logit = (M * U_I + B) / T``, parsed with ``ast`` (never ``eval``).

The result is a small expression tree over symbols, constants, + - * /, unary minus and a
fixed set of named functions; the formula check matches that tree against the model graph.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Union

FUNCTIONS = frozenset(
    {"sigmoid", "softplus", "exp", "log", "tanh", "relu", "abs", "sqrt", "logsigmoid", "square", "logsumexp"}
)
_BINARY = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow"}


class FormulaSyntaxError(ValueError):
    """A formula that is not an equation over symbols; `column` is 1-based within the text."""

    def __init__(self, message: str, column: int | None = None):
        super().__init__(message)
        self.column = column


@dataclass(frozen=True)
class Symbol:
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Const:
    value: float

    def __str__(self) -> str:
        return f"{self.value:g}"


@dataclass(frozen=True)
class BinOp:
    op: str  # add | sub | mul | div | pow
    left: "Expr"
    right: "Expr"

    def __str__(self) -> str:
        return f"{self.op}({self.left}, {self.right})"


@dataclass(frozen=True)
class Neg:
    operand: "Expr"

    def __str__(self) -> str:
        return f"neg({self.operand})"


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple["Expr", ...]

    def __str__(self) -> str:
        return f"{self.func}({', '.join(map(str, self.args))})"


Expr = Union[Symbol, Const, BinOp, Neg, Call]


@dataclass(frozen=True)
class Equation:
    lhs: str
    rhs: Expr
    text: str

    def symbols(self) -> set[str]:
        return {self.lhs} | symbols_in(self.rhs)


def symbols_in(expr: Expr) -> set[str]:
    if isinstance(expr, Symbol):
        return {expr.name}
    if isinstance(expr, BinOp):
        return symbols_in(expr.left) | symbols_in(expr.right)
    if isinstance(expr, Neg):
        return symbols_in(expr.operand)
    if isinstance(expr, Call):
        return set().union(*(symbols_in(a) for a in expr.args))
    return set()


def parse_equation(text: str) -> Equation:
    """Parse ``lhs = rhs``; raise FormulaSyntaxError naming the offending column."""
    try:
        tree = ast.parse(text.strip(), mode="exec")
    except SyntaxError as exc:
        raise FormulaSyntaxError(f"not a valid equation ({exc.msg})", exc.offset) from None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assign):
        raise FormulaSyntaxError("expected exactly one equation of the form `symbol = expression`")
    assign = tree.body[0]
    if len(assign.targets) != 1 or not isinstance(assign.targets[0], ast.Name):
        raise FormulaSyntaxError("the left-hand side must be a single symbol, e.g. `logit = ...`", 1)
    return Equation(assign.targets[0].id, _convert(assign.value), text.strip())


def _convert(node: ast.AST) -> Expr:
    column = getattr(node, "col_offset", None)
    column = column + 1 if column is not None else None
    if isinstance(node, ast.Name):
        return Symbol(node.id)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(
        node.value, bool
    ):
        return Const(float(node.value))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        return BinOp(_BINARY[type(node.op)], _convert(node.left), _convert(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return Neg(_convert(node.operand))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd):
        return _convert(node.operand)
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            name = ast.unparse(node.func)
            raise FormulaSyntaxError(
                f"unknown function `{name}`; allowed: {', '.join(sorted(FUNCTIONS))}", column
            )
        if node.keywords:
            raise FormulaSyntaxError(f"`{node.func.id}` takes positional arguments only", column)
        if node.func.id == "logsumexp" and len(node.args) < 2:
            raise FormulaSyntaxError("`logsumexp` combines two or more terms: logsumexp(a, b, ...)", column)
        return Call(node.func.id, tuple(_convert(a) for a in node.args))
    raise FormulaSyntaxError(
        f"`{ast.unparse(node)}` is not allowed: use symbols, numbers, + - * /, unary minus and "
        f"the functions {', '.join(sorted(FUNCTIONS))}",
        column,
    )
