"""Match a design equation's expression tree against the graph, node by node.

`+` and `*` are commutative and associative (`(B + U_I*M)/T` matches `(M*U_I + B)/T`), shape-only
ops are skipped, a design symbol matches exactly the node it is bound to, and a few equivalent
spellings are accepted (`a - b` as `a + neg(b)`, `a / b` as `a * reciprocal(b)`). When the match
fails, the result keeps the closest partial match: which sub-expressions were found, and for each
one that was not, the node where it was expected and what that node computes instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import permutations
from math import isclose
from typing import Any, Mapping

from alignguard.graph.model_graph import ModelGraph, Ref
from alignguard.graph.vocabulary import normalise
from alignguard.spec.formula import BinOp, Call, Const, Expr, Neg, Symbol

_MAX_TERMS = 6  # n! assignments of flattened + / * terms; design equations are small


@dataclass(frozen=True)
class Miss:
    expr: Expr  # the design sub-expression not found
    node: str | None  # the graph node where it was expected (None: a non-tensor operand)


@dataclass(frozen=True)
class Match:
    ok: bool
    score: int  # design sub-expressions matched
    skeleton: str  # the design expression with unmatched parts as `?`
    misses: tuple[Miss, ...] = ()
    wildcards: tuple[str, ...] = field(default=())  # unbound symbols accepted as anything


def expr_size(expr: Expr) -> int:
    if isinstance(expr, BinOp):
        return 1 + expr_size(expr.left) + expr_size(expr.right)
    if isinstance(expr, Neg):
        return 1 + expr_size(expr.operand)
    if isinstance(expr, Call):
        return 1 + sum(expr_size(a) for a in expr.args)
    return 1


class FormulaMatcher:
    def __init__(self, graph: ModelGraph, symbols: Mapping[str, str | None]) -> None:
        self.graph = graph
        self.symbols = {name: graph.skip_transparent(node) if node else None for name, node in symbols.items()}
        self.symbol_nodes = {node for node in self.symbols.values() if node}
        self._memo: dict[tuple[Expr, Any], Match] = {}

    def match(self, expr: Expr, operand: Any) -> Match:
        key = (expr, operand)
        if key not in self._memo:
            self._memo[key] = self._match(expr, operand)
        return self._memo[key]

    # ---- dispatch ---------------------------------------------------------------------------
    def _match(self, expr: Expr, operand: Any) -> Match:
        node = self.graph.skip_transparent(operand.node) if isinstance(operand, Ref) else None
        if isinstance(expr, Symbol):
            return self._symbol(expr, node)
        if isinstance(expr, Const):
            value = operand if isinstance(operand, (int, float)) else None
            ok = value is not None and isclose(float(value), expr.value, rel_tol=1e-6, abs_tol=1e-12)
            return Match(True, 1, str(expr)) if ok else self._miss(expr, node)
        if node is None:
            return self._miss(expr, None)
        alternatives = self._alternatives(expr, node)
        if not alternatives:
            return self._miss(expr, node)
        return max(alternatives, key=lambda m: (m.ok, m.score))

    def _symbol(self, expr: Symbol, node: str | None) -> Match:
        bound = self.symbols.get(expr.name)
        if bound is None:
            return Match(True, 0, expr.name, wildcards=(expr.name,))
        return Match(True, 1, expr.name) if node == bound else self._miss(expr, node)

    def _miss(self, expr: Expr, node: str | None) -> Match:
        return Match(False, 0, "?", (Miss(expr, node),))

    def _op(self, node: str) -> str:
        return self.graph.node(node)["op"]

    def _operands(self, node: str) -> list[Any]:
        return [o for o in self.graph.operands(node) if o is not None]

    # ---- operators ---------------------------------------------------------------------------
    def _alternatives(self, expr: Expr, node: str) -> list[Match]:
        op = self._op(node)
        found: list[Match] = []
        if op == "branch":  # several batches took different paths: every path must match
            parts = [self.match(expr, o) for o in self._operands(node)]
            return [Match(all(p.ok for p in parts), min(p.score for p in parts), parts[0].skeleton,
                          tuple(m for p in parts for m in p.misses), tuple(w for p in parts for w in p.wildcards))]
        if isinstance(expr, BinOp) and expr.op in ("add", "mul"):
            if op == expr.op:
                found.append(self._commutative(expr, node))
        elif isinstance(expr, BinOp):
            found.extend(self._ordered(expr, node, op))
        elif isinstance(expr, Neg):
            if op == "neg":
                found.append(self._compose("neg", [expr.operand], self._operands(node)[:1]))
            operands = self._operands(node)
            if op == "mul" and len(operands) == 2:
                for minus_one, other in ((operands[0], operands[1]), (operands[1], operands[0])):
                    if isinstance(minus_one, (int, float)) and minus_one == -1:
                        found.append(self._compose("neg", [expr.operand], [other]))
        elif isinstance(expr, Call) and expr.func == "logsumexp":
            found.extend(self._logsumexp(expr, node, op))
        elif isinstance(expr, Call) and op == normalise(expr.func):
            found.append(self._compose(expr.func, list(expr.args), self._operands(node)[: len(expr.args)]))
        return found

    def _logsumexp(self, expr: Call, node: str, op: str) -> list[Match]:
        """logsumexp(a, b, ...) (terms commute): torch.logsumexp over a stack/cat of the terms, or
        log(exp(a) + exp(b) + ...) written out."""
        terms = list(expr.args)
        operands = self._operands(node)
        if op == "logsumexp" and operands and isinstance(operands[0], Ref):
            stacked = self.graph.skip_transparent(operands[0].node)
            if self._op(stacked) in ("stack", "cat"):
                return [self._assign("logsumexp", terms, self._operands(stacked))]
        if op == "log" and operands and isinstance(operands[0], Ref):
            total = self.graph.skip_transparent(operands[0].node)
            if self._op(total) == "add":
                exps = self._flatten_graph(total, "add")
                inner = [self._operands(self.graph.skip_transparent(e.node))[:1] if isinstance(e, Ref) and
                         self._op(self.graph.skip_transparent(e.node)) == "exp" else [None] for e in exps]
                if all(i and i[0] is not None for i in inner):
                    return [self._assign("logsumexp", terms, [i[0] for i in inner])]
        return []

    def _ordered(self, expr: BinOp, node: str, op: str) -> list[Match]:
        operands = self._operands(node)
        found = []
        if op == expr.op and len(operands) >= 2:
            found.append(self._compose(expr.op, [expr.left, expr.right], operands[:2]))
        if expr.op == "sub" and op == "add" and len(operands) == 2:  # a + neg(b)
            for a, b in ((operands[0], operands[1]), (operands[1], operands[0])):
                if isinstance(b, Ref) and self._op(self.graph.skip_transparent(b.node)) == "neg":
                    inner = self._operands(self.graph.skip_transparent(b.node))[:1]
                    found.append(self._compose("sub", [expr.left, expr.right], [a, *inner]))
        if expr.op == "div" and op == "mul" and len(operands) == 2:  # a * reciprocal(b)
            for a, b in ((operands[0], operands[1]), (operands[1], operands[0])):
                if isinstance(b, Ref) and self._op(self.graph.skip_transparent(b.node)) == "reciprocal":
                    inner = self._operands(self.graph.skip_transparent(b.node))[:1]
                    found.append(self._compose("div", [expr.left, expr.right], [a, *inner]))
        if expr.op == "pow" and op == "square" and isinstance(expr.right, Const) and expr.right.value == 2:
            found.append(self._compose("pow", [expr.left], operands[:1], suffix=", 2"))
        return found

    def _compose(self, head: str, exprs: list[Expr], operands: list[Any], suffix: str = "") -> Match:
        parts = [self.match(e, o) for e, o in zip(exprs, operands)]
        parts += [self._miss(e, None) for e in exprs[len(operands):]]
        return _combine(head, parts, suffix)

    def _commutative(self, expr: BinOp, node: str) -> Match:
        terms = _flatten_expr(expr, expr.op)
        candidates = [self._flatten_graph(node, expr.op)]
        binary = self._operands(node)[:2]
        if len(binary) == 2 and binary != candidates[0]:
            candidates.append(binary)
        best: Match | None = None
        for operands in candidates:
            match = self._assign(expr.op, terms, operands)
            if best is None or (match.ok, match.score) > (best.ok, best.score):
                best = match
        return best

    def _assign(self, op: str, terms: list[Expr], operands: list[Any]) -> Match:
        """Best pairing of design terms with graph operands (both sides commutative)."""
        if len(terms) > _MAX_TERMS or len(operands) > _MAX_TERMS:
            return _combine(op, [self._miss(t, None) for t in terms])
        best: Match | None = None
        for order in permutations(range(len(operands)), min(len(terms), len(operands))):
            parts = [self.match(terms[i], operands[j]) for i, j in enumerate(order)]
            parts += [self._miss(t, None) for t in terms[len(order):]]
            match = _combine(op, parts)
            if len(operands) != len(terms):
                match = Match(False, match.score, match.skeleton, match.misses, match.wildcards)
            if best is None or (match.ok, match.score) > (best.ok, best.score):
                best = match
        return best

    def _flatten_graph(self, node: str, op: str) -> list[Any]:
        """Operands of a chain of the same commutative op; design symbols are never opened up."""
        flat: list[Any] = []
        for operand in self._operands(node):
            inner = self.graph.skip_transparent(operand.node) if isinstance(operand, Ref) else None
            if inner and inner not in self.symbol_nodes and self._op(inner) == op:
                flat.extend(self._flatten_graph(inner, op))
            else:
                flat.append(operand)
        return flat


def _flatten_expr(expr: Expr, op: str) -> list[Expr]:
    if isinstance(expr, BinOp) and expr.op == op:
        return _flatten_expr(expr.left, op) + _flatten_expr(expr.right, op)
    return [expr]


def _combine(head: str, parts: list[Match], suffix: str = "") -> Match:
    return Match(
        ok=all(p.ok for p in parts),
        score=1 + sum(p.score for p in parts),
        skeleton=f"{head}({', '.join(p.skeleton for p in parts)}{suffix})",
        misses=tuple(m for p in parts for m in p.misses),
        wildcards=tuple(w for p in parts for w in p.wildcards),
    )
